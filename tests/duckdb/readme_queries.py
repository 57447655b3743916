"""Runs the SQL blocks README.md marks with `<!-- ci:query NAME -->` in DuckDB,
from WORKDIR (so the README's relative paths resolve), and prints one JSON
object {NAME: [[row values]...], ...} plus a few layout checks.

usage: python readme_queries.py README.md WORKDIR
"""
import json
import os
import re
import sys

import duckdb

readme, workdir = sys.argv[1], sys.argv[2]
text = open(readme, encoding="utf-8").read()
blocks = re.findall(r"<!-- ci:query ([\w-]+) -->\s*```sql\n(.*?)```", text, re.S)
if not blocks:
    sys.exit("no <!-- ci:query --> blocks in README.md")
os.chdir(workdir)
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
out = {}
for name, sql in blocks:
    rows = con.execute(sql).fetchall()
    out[name] = [[v if isinstance(v, (int, float, str, type(None))) else str(v) for v in r] for r in rows]

# Layout checks: Hive partitions agree with the data, offsets are unique.
c = "read_parquet('out/demo/comments/**/*.parquet', hive_partitioning = true)"
out["_dt_mismatch"] = con.execute(f"SELECT count(*) FROM {c} WHERE CAST(event_time AS DATE) <> CAST(dt AS DATE)").fetchone()[0]
out["_dup_coords"] = con.execute(
    f"SELECT count(*) FROM (SELECT source_partition, source_offset FROM {c} GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
out["_schema_version"] = con.execute(f"SELECT DISTINCT schema_version FROM {c}").fetchall()
out["_embedded"] = con.execute(f"SELECT count(*), min(len(embedding)) FROM {c} WHERE embedding IS NOT NULL AND token_count > 0").fetchall()
out["_pii_left"] = con.execute(f"SELECT count(*) FROM {c} WHERE regexp_matches(text, '@|4111 1111|07700|7946')").fetchone()[0]
out["_pii_redacted"] = con.execute(f"SELECT sum(pii_redacted) FROM {c}").fetchone()[0]
out["_languages"] = con.execute(f"SELECT language, count(*) FROM {c} GROUP BY ALL ORDER BY 2 DESC").fetchall()
m = "read_parquet('out/demo/mentions/**/*.parquet', hive_partitioning = true)"
# The staff-blame query, computed another way: from the comments table's own columns.
out["_staff_blame_check"] = con.execute(
    f"SELECT staff_id, count(*) FROM {c} WHERE blames_staff AND NOT blames_product AND staff_id IS NOT NULL "
    "GROUP BY ALL ORDER BY 2 DESC, 1").fetchall()
# mentions/ is the aspects list flattened: same rows, same comments.
out["_mentions_vs_aspects"] = con.execute(
    f"SELECT (SELECT count(*) FROM {m}), (SELECT coalesce(sum(len(aspects)), 0) FROM {c})").fetchone()
out["_analysis"] = con.execute(
    f"SELECT language, analysis_skipped, count(*), count(sentiment), count(aspects) FROM {c} GROUP BY ALL ORDER BY 1").fetchall()
# Repeats recomputed from mentions/ alone: an earlier negative mention of the
# same target by the same customer, in the same partition, within 30 days.
out["_repeat_check"] = con.execute(f"""
    WITH neg AS (
      SELECT DISTINCT comment_id, customer_id, target, event_time, source_partition, source_offset
      FROM {m} WHERE polarity = 'negative' AND customer_id IS NOT NULL)
    SELECT b.comment_id, list(DISTINCT a.comment_id ORDER BY a.comment_id)
    FROM neg b JOIN neg a
      ON a.customer_id = b.customer_id AND a.target = b.target
     AND a.source_partition = b.source_partition AND a.source_offset < b.source_offset
     AND abs(epoch(b.event_time) - epoch(a.event_time)) <= 30 * 86400
    GROUP BY 1 ORDER BY 1""").fetchall()
# Did we answer, recomputed from actions/ and responses/ alone: per
# priority, queued comments with an event that reached the customer.
a = "read_parquet('out/demo/actions/**/*.parquet', hive_partitioning = true)"
r = "read_parquet('out/demo/responses/**/*.parquet', hive_partitioning = true)"
out["_answered_check"] = con.execute(f"""
    SELECT a.priority, count(DISTINCT a.comment_id),
           count(DISTINCT a.comment_id) FILTER (WHERE r.comment_id IS NOT NULL)
    FROM {a} a LEFT JOIN (SELECT DISTINCT comment_id FROM {r}
                          WHERE outcome IN ('contacted', 'resolved', 'declined')) r
      ON a.comment_id = r.comment_id
    GROUP BY 1 ORDER BY 1""").fetchall()
print(json.dumps(out))
