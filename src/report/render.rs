//! The report as one self-contained HTML page (inline CSS and SVG, nothing
//! fetched, readable on a phone and printable) and as Markdown.

use std::fmt::Write;

use super::{charts, GroupRate, Rate, Report, ScoreRow, ThemeCount, ThemeRow};

/// The sections, in order: `(id, title)`. Tests look for each in the page.
pub const SECTIONS: [(&str, &str); 7] = [
    ("overview", "1. Overview"),
    ("themes", "2. Themes"),
    ("scorecard", "3. Fair staff scorecard"),
    ("solicitation", "4. Score solicitation"),
    ("follow-up", "5. Follow-up queue"),
    ("fatigue", "6. Survey fatigue"),
    ("answered", "7. Did we answer?"),
];

/// Rows of the follow-up queue shown in HTML and Markdown (JSON has all).
const QUEUE_ROWS: usize = 50;

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn rate(r: &Rate) -> String {
    format!(
        "{} ({}/{}; 95% CI {}–{})",
        pct(r.rate),
        r.k,
        r.n,
        pct(r.low),
        pct(r.high)
    )
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("—")
}

fn mix(t: &ThemeRow) -> String {
    let n = t.sentiment.iter().sum::<u64>().max(1) as f64;
    format!(
        "{} neg · {} neu · {} pos",
        pct(t.sentiment[0] as f64 / n),
        pct(t.sentiment[1] as f64 / n),
        pct(t.sentiment[2] as f64 / n)
    )
}

fn complaints(t: &ThemeRow) -> String {
    format!(
        "staff {} · product {} · process {}",
        pct(t.complaint_share.staff),
        pct(t.complaint_share.product),
        pct(t.complaint_share.process)
    )
}

fn impact(t: &ThemeRow) -> String {
    t.impact
        .map(|d| format!("{d:+.2}"))
        .unwrap_or_else(|| "—".into())
}

fn spikes(t: &ThemeRow) -> String {
    if t.spikes.is_empty() {
        "—".into()
    } else {
        t.spikes
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// "engineer ×4 (“The engineer was great”); staff ×1 (…)" (empty when
/// none): each theme with its latest clause, cut at 80 characters.
fn theme_counts(v: &[ThemeCount]) -> String {
    v.iter()
        .map(|t| {
            let mut e: String = t.example.chars().take(80).collect();
            if e.len() < t.example.len() {
                e.push('…');
            }
            format!("{} ×{} (“{e}”)", t.label, t.mentions)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the "praised for" and "criticised for" columns hold, or why they
/// are empty.
fn staff_themes_note(r: &Report) -> &'static str {
    if r.scorecard.staff_themes {
        "Praised for / criticised for: the staff themes (clusters of what customers say about staff, per clause) of each one's positive and negative staff mentions, most mentioned first."
    } else {
        "Praised for / criticised for need themes per mention (`themes.unit = \"mention\"` in the pipeline): these comments' staff clauses carry no theme."
    }
}

fn rank(r: &ScoreRow) -> String {
    r.rank
        .map(|k| k.to_string())
        .unwrap_or_else(|| "not enough data".into())
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1000px;padding:12px;color:#111;line-height:1.4}\
h1{font-size:1.5em}h2{border-bottom:2px solid #2563eb;padding-bottom:2px;margin-top:1.6em}\
table{border-collapse:collapse;width:100%;font-size:.9em;margin:.5em 0}th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}\
th{background:#f3f4f6}.wrap{overflow-x:auto}.note{background:#fef3c7;border-left:4px solid #d97706;padding:6px 10px}\
.muted{color:#666}.cards{display:flex;flex-wrap:wrap;gap:8px}.card{border:1px solid #ddd;border-radius:6px;padding:6px 10px;min-width:120px}\
.card b{display:block;font-size:1.4em}.spike{color:#b91c1c;font-weight:bold}q{font-style:italic}\
@media print{body{max-width:none}.wrap{overflow:visible}section{break-inside:avoid-page}}";

/// The whole report as one HTML page.
pub fn html(r: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
<title>verbatim report</title><style>{CSS}</style></head><body>\
<h1>What customers say</h1><p class=\"muted\">verbatim report · generated {} · {} · window {} to {}</p>",
        r.generated_at.format("%Y-%m-%d %H:%M UTC"),
        escape(&r.output_root),
        r.since
            .or(r.overview.first_day)
            .map(|d| d.to_string())
            .unwrap_or_else(|| "—".into()),
        r.until
            .or(r.overview.last_day)
            .map(|d| d.to_string())
            .unwrap_or_else(|| "—".into()),
    );
    let _ = write!(h, "<nav><ul>");
    for (id, title) in SECTIONS {
        let _ = write!(h, "<li><a href=\"#{id}\">{title}</a></li>");
    }
    let _ = write!(h, "</ul></nav>");

    // 1. Overview
    let o = &r.overview;
    let _ = write!(
        h,
        "<section id=\"overview\"><h2>{}</h2><div class=\"cards\"><div class=\"card\"><b>{}</b>comments</div><div class=\"card\"><b>{}</b>with a score</div></div>",
        SECTIONS[0].1, o.comments, o.scores.n
    );
    let _ = write!(
        h,
        "<h3>Sentiment</h3>{}",
        charts::bars("Sentiment of comments", &o.sentiment, (100, 116, 139))
    );
    if o.scores.n > 0 {
        let _ = write!(
            h,
            "<h3>Scores (n = {})</h3>{}<p>Mean {:.2}, shown only beside the distribution.</p>",
            o.scores.n,
            charts::bars("Score distribution", &o.scores.histogram, (37, 99, 235)),
            o.scores.mean.unwrap_or_default()
        );
        if let Some(note) = &o.scores.skew_note {
            let _ = write!(h, "<p class=\"note\">{}</p>", escape(note));
        }
    } else {
        let _ = write!(h, "<p class=\"muted\">No comment carried a score.</p>");
    }
    let _ = write!(h, "<div class=\"cards\">");
    for (title, list) in [("Languages", &o.languages), ("Channels", &o.channels)] {
        let _ = write!(
            h,
            "<div class=\"card\"><h3>{title}</h3><table><tr><th>value</th><th>comments</th></tr>"
        );
        for (k, n) in list {
            let _ = write!(h, "<tr><td>{}</td><td>{n}</td></tr>", escape(k));
        }
        let _ = write!(h, "</table></div>");
    }
    let _ = write!(h, "</div></section>");

    // 2. Themes
    let _ = write!(h, "<section id=\"themes\"><h2>{}</h2>", SECTIONS[1].1);
    for (title, list) in [
        ("Top themes", &r.themes.top),
        (
            "Fastest growing (last 7 days against the 7 before)",
            &r.themes.growing,
        ),
    ] {
        let _ = write!(h, "<h3>{title}</h3>");
        if list.is_empty() {
            let _ = write!(h, "<p class=\"muted\">None in this window.</p>");
            continue;
        }
        let _ = write!(h, "<div class=\"wrap\"><table><tr><th>theme</th><th>comments</th><th>trend</th><th>sentiment</th><th>complaints about</th><th>spikes</th><th>score impact</th><th>examples</th></tr>");
        for t in list {
            let _ = write!(
                h,
                "<tr><td>#{} {}</td><td>{} <span class=\"muted\">(7d {} vs {})</span></td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
                t.id,
                label_html(t),
                t.count,
                t.last_7_days,
                t.previous_7_days,
                charts::sparkline(&format!("theme {} per day", t.id), &t.daily),
                mix(t),
                complaints(t),
                if t.spikes.is_empty() { "" } else { "spike" },
                spikes(t),
                impact(t),
                t.examples
                    .iter()
                    .map(|e| format!("<q>{}</q>", escape(e)))
                    .collect::<Vec<_>>()
                    .join("<br>")
            );
        }
        let _ = write!(h, "</table></div>");
    }
    let _ = write!(
        h,
        "<p class=\"muted\">{} comments have no theme. Score impact: how much the mean score would move without the theme's comments (+ means the theme pulls it down).</p></section>",
        r.themes.unthemed
    );

    // 3. Scorecard
    let _ = write!(
        h,
        "<section id=\"scorecard\"><h2>{}</h2><p>“Scored today” counts every negative comment against the person it is attached to; “aimed at staff” counts only comments with a negative staff aspect, so complaints about the product, price or process are not theirs. 95% Wilson intervals; fewer than {} analysed comments: not enough data, never ranked.</p>",
        SECTIONS[2].1, r.scorecard.min_comments
    );
    for (title, list) in [
        ("Per staff member", &r.scorecard.staff),
        ("Per location", &r.scorecard.locations),
    ] {
        let _ = write!(h, "<h3>{title}</h3>");
        if list.is_empty() {
            let _ = write!(h, "<p class=\"muted\">No comments carry this field.</p>");
            continue;
        }
        let _ = write!(h, "<div class=\"wrap\"><table><tr><th>rank</th><th>who</th><th>comments</th><th>negative, scored today</th><th>negative, aimed at staff</th><th>praised for</th><th>criticised for</th></tr>");
        for s in list {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                rank(s),
                escape(&s.key),
                s.comments,
                rate(&s.negative),
                rate(&s.corrected),
                escape(&theme_counts(&s.praised_for)),
                escape(&theme_counts(&s.criticised_for))
            );
        }
        let _ = write!(h, "</table></div>");
    }
    let _ = write!(
        h,
        "<p class=\"muted\">{}</p></section>",
        staff_themes_note(r)
    );

    // 4. Solicitation
    let so = &r.solicitation;
    let _ = write!(
        h,
        "<section id=\"solicitation\"><h2>{}</h2><p>Comments reporting that staff asked or pressured them for a high score: {}.</p>",
        SECTIONS[3].1,
        rate(&so.overall)
    );
    for (title, list) in [
        ("By location", &so.by_location),
        ("By staff member", &so.by_staff),
    ] {
        let _ = write!(h, "<h3>{title}</h3>{}", group_table(list));
    }
    let _ = write!(h, "<h3>Examples</h3><ul>");
    for e in &so.examples {
        let _ = write!(
            h,
            "<li><b>{}</b> ({} at {}): <q>{}</q></li>",
            escape(&e.evidence),
            escape(opt(&e.staff_id)),
            escape(opt(&e.location)),
            escape(&e.text)
        );
    }
    let _ = write!(h, "</ul></section>");

    // 5. Follow-up
    let _ = write!(
        h,
        "<section id=\"follow-up\"><h2>{}</h2><p>{} comments ask for contact, report a repeat issue or a safety risk; most urgent, then newest, first{}.</p><div class=\"wrap\"><table><tr><th>priority</th><th>age</th><th>flags</th><th>why</th><th>staff</th><th>location</th><th>comment</th></tr>",
        SECTIONS[4].1,
        r.follow_up.len(),
        if r.follow_up.len() > QUEUE_ROWS { format!(" (first {QUEUE_ROWS}; the JSON has all)") } else { String::new() }
    );
    for f in r.follow_up.iter().take(QUEUE_ROWS) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><b>{}</b></td><td>{}</td><td>{}</td><td>{} <span class=\"muted\">{}</span></td></tr>",
            ["", "urgent", "high", "normal"][f.priority.min(3) as usize],
            age(f.age_hours),
            f.flags.join(", "),
            escape(&f.evidence),
            escape(opt(&f.staff_id)),
            escape(opt(&f.location)),
            escape(&f.text),
            escape(&f.id)
        );
    }
    let _ = write!(h, "</table></div></section>");

    // 6. Fatigue
    let fa = &r.fatigue;
    let _ = write!(
        h,
        "<section id=\"fatigue\"><h2>{}</h2><p>Comments complaining about being asked for feedback: {}.</p>",
        SECTIONS[5].1,
        rate(&fa.overall)
    );
    let days: Vec<(String, f64)> = fa
        .daily
        .iter()
        .map(|(d, k, n)| (d.to_string(), *k as f64 / (*n).max(1) as f64 * 100.0))
        .collect();
    if days.len() > 1 {
        let _ = write!(
            h,
            "{}",
            charts::trend("Survey fatigue share per day", &days)
        );
    }
    let _ = write!(h, "<ul>");
    for e in &fa.examples {
        let _ = write!(
            h,
            "<li><b>{}</b>: <q>{}</q></li>",
            escape(&e.evidence),
            escape(&e.text)
        );
    }
    let _ = write!(h, "</ul></section>");

    // 7. Did we answer?
    let (intro, tables, notes) = answered_parts(&r.answered);
    let _ = write!(
        h,
        "<section id=\"answered\"><h2>{}</h2><p>{}</p>",
        SECTIONS[6].1,
        escape(&intro)
    );
    for n in &notes {
        let _ = write!(h, "<p class=\"note\">{}</p>", escape(n));
    }
    for t in &tables {
        let _ = write!(h, "<h3>{}</h3>", escape(&t.title));
        if t.rows.is_empty() {
            let _ = write!(h, "<p class=\"muted\">None.</p>");
            continue;
        }
        let _ = write!(h, "<div class=\"wrap\"><table><tr>");
        for c in &t.header {
            let _ = write!(h, "<th>{}</th>", escape(c));
        }
        let _ = write!(h, "</tr>");
        for row in &t.rows {
            let _ = write!(h, "<tr>");
            for c in row {
                let _ = write!(h, "<td>{}</td>", escape(c));
            }
            let _ = write!(h, "</tr>");
        }
        let _ = write!(h, "</table></div>");
    }
    let _ = write!(h, "</section><footer class=\"muted\">Made by verbatim from the Parquet under {}. Texts were PII-redacted by the job.</footer></body></html>", escape(&r.output_root));
    h
}

fn age(hours: i64) -> String {
    if hours < 48 {
        format!("{hours} h")
    } else {
        format!("{} d", hours / 24)
    }
}

fn group_table(list: &[GroupRate]) -> String {
    if list.is_empty() {
        return "<p class=\"muted\">No comments carry this field.</p>".into();
    }
    let mut h = String::from("<div class=\"wrap\"><table><tr><th>who</th><th>rate</th></tr>");
    for g in list.iter().take(15) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(&g.key),
            rate(&g.rate)
        );
    }
    h.push_str("</table></div>");
    h
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The report as Markdown (the same numbers, without charts).
pub fn markdown(r: &Report) -> String {
    let mut m = String::new();
    let o = &r.overview;
    let _ = writeln!(
        m,
        "# What customers say\n\nverbatim report, generated {}, from `{}`.\n",
        r.generated_at.format("%Y-%m-%d %H:%M UTC"),
        r.output_root
    );
    let _ = writeln!(
        m,
        "## {}\n\n{} comments, {} with a score.\n",
        SECTIONS[0].1, o.comments, o.scores.n
    );
    let _ = writeln!(m, "| sentiment | comments |\n|---|---|");
    for (k, n) in &o.sentiment {
        let _ = writeln!(m, "| {k} | {n} |");
    }
    if o.scores.n > 0 {
        let _ = writeln!(m, "\n| score | comments |\n|---|---|");
        for (k, n) in &o.scores.histogram {
            let _ = writeln!(m, "| {k} | {n} |");
        }
        let _ = writeln!(
            m,
            "\nMean {:.2} (n = {}), shown only beside the distribution.",
            o.scores.mean.unwrap_or_default(),
            o.scores.n
        );
        if let Some(note) = &o.scores.skew_note {
            let _ = writeln!(m, "\n> **Note:** {note}");
        }
    }
    for (title, list) in [("language", &o.languages), ("channel", &o.channels)] {
        let _ = writeln!(m, "\n| {title} | comments |\n|---|---|");
        for (k, n) in list {
            let _ = writeln!(m, "| {} | {n} |", md_cell(k));
        }
    }
    let _ = writeln!(m, "\n## {}\n", SECTIONS[1].1);
    for (title, list) in [
        ("Top themes", &r.themes.top),
        ("Fastest growing", &r.themes.growing),
    ] {
        let _ = writeln!(m, "### {title}\n\n| theme | comments | last 7 d / 7 before | sentiment | complaints about | spikes | score impact | example |\n|---|---|---|---|---|---|---|---|");
        for t in list {
            let _ = writeln!(
                m,
                "| #{} {} | {} | {} / {} | {} | {} | {} | {} | {} |",
                t.id,
                md_cell(&label_text(t)),
                t.count,
                t.last_7_days,
                t.previous_7_days,
                mix(t),
                complaints(t),
                spikes(t),
                impact(t),
                md_cell(t.examples.first().map(String::as_str).unwrap_or(""))
            );
        }
        m.push('\n');
    }
    let _ = writeln!(m, "## {}\n\nNegatives aimed at staff only (complaints about the product, price or process excluded), with 95% Wilson intervals; fewer than {} analysed comments: not enough data.\n", SECTIONS[2].1, r.scorecard.min_comments);
    for (title, list) in [
        ("Staff", &r.scorecard.staff),
        ("Location", &r.scorecard.locations),
    ] {
        let _ = writeln!(m, "| rank | {title} | comments | negative, scored today | negative, aimed at staff | praised for | criticised for |\n|---|---|---|---|---|---|---|");
        for s in list {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} |",
                rank(s),
                md_cell(&s.key),
                s.comments,
                rate(&s.negative),
                rate(&s.corrected),
                md_cell(&theme_counts(&s.praised_for)),
                md_cell(&theme_counts(&s.criticised_for))
            );
        }
        m.push('\n');
    }
    let _ = writeln!(m, "{}\n", staff_themes_note(r));
    let so = &r.solicitation;
    let _ = writeln!(
        m,
        "## {}\n\nOverall: {}.\n\n| location | rate |\n|---|---|",
        SECTIONS[3].1,
        rate(&so.overall)
    );
    for g in so.by_location.iter().take(15) {
        let _ = writeln!(m, "| {} | {} |", md_cell(&g.key), rate(&g.rate));
    }
    let _ = writeln!(m, "\n| staff | rate |\n|---|---|");
    for g in so.by_staff.iter().take(15) {
        let _ = writeln!(m, "| {} | {} |", md_cell(&g.key), rate(&g.rate));
    }
    for e in &so.examples {
        let _ = writeln!(
            m,
            "- **{}** ({}): {}",
            md_cell(&e.evidence),
            md_cell(opt(&e.staff_id)),
            md_cell(&e.text)
        );
    }
    let _ = writeln!(m, "\n## {}\n\n{} comments.\n\n| priority | age | flags | why | staff | location | comment |\n|---|---|---|---|---|---|---|", SECTIONS[4].1, r.follow_up.len());
    for f in r.follow_up.iter().take(QUEUE_ROWS) {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} |",
            ["", "urgent", "high", "normal"][f.priority.min(3) as usize],
            age(f.age_hours),
            f.flags.join(", "),
            md_cell(&f.evidence),
            md_cell(opt(&f.staff_id)),
            md_cell(opt(&f.location)),
            md_cell(&f.text)
        );
    }
    let fa = &r.fatigue;
    let _ = writeln!(
        m,
        "\n## {}\n\nOverall: {}.\n\n| day | complaining | comments |\n|---|---|---|",
        SECTIONS[5].1,
        rate(&fa.overall)
    );
    for (d, k, n) in &fa.daily {
        let _ = writeln!(m, "| {d} | {k} | {n} |");
    }
    for e in &fa.examples {
        let _ = writeln!(m, "- **{}**: {}", md_cell(&e.evidence), md_cell(&e.text));
    }
    let (intro, tables, notes) = answered_parts(&r.answered);
    let _ = writeln!(m, "\n## {}\n\n{intro}\n", SECTIONS[6].1);
    for n in &notes {
        let _ = writeln!(m, "> {}\n", md_cell(n));
    }
    for t in &tables {
        let _ = writeln!(m, "### {}\n", t.title);
        if t.rows.is_empty() {
            let _ = writeln!(m, "None.\n");
            continue;
        }
        let _ = writeln!(m, "| {} |", t.header.join(" | "));
        let _ = writeln!(m, "|{}", "---|".repeat(t.header.len()));
        for row in &t.rows {
            let cells: Vec<String> = row.iter().map(|c| md_cell(c)).collect();
            let _ = writeln!(m, "| {} |", cells.join(" | "));
        }
        let _ = writeln!(m);
    }
    m
}

/// One table of section 7, the same in HTML and Markdown.
struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn hours(h: Option<f64>) -> String {
    h.map_or("—".into(), |h| format!("{h:.1} h"))
}

/// Section 7 as an introduction, its tables and its warnings.
fn answered_parts(a: &crate::report::answered::Answered) -> (String, Vec<Table>, Vec<String>) {
    let intro = format!(
        "{} comments were queued for a person (as of {}). Customers who asked to be contacted and got an answer: {}. The time to a first answer counts from when the customer wrote; the SLA is [actions.sla].",
        a.queued,
        a.as_of.format("%Y-%m-%d %H:%M UTC"),
        rate(&a.contact_requested)
    );
    let mut header: Vec<String> = [
        "priority",
        "SLA",
        "queued",
        "answered",
        "within SLA",
        "overdue",
    ]
    .map(String::from)
    .to_vec();
    if let Some(p) = a.by_priority.first() {
        header.extend(p.time_to_answer.iter().map(|(b, _)| b.clone()));
    }
    let priorities = Table {
        title: "Time to a first answer, per priority (a distribution, not a mean)".into(),
        header,
        rows: a
            .by_priority
            .iter()
            .filter(|p| p.actions > 0)
            .map(|p| {
                let mut row = vec![
                    p.priority.clone(),
                    format!("{} h", p.sla_hours),
                    p.actions.to_string(),
                    rate(&p.answered),
                    rate(&p.within_sla),
                    p.overdue.to_string(),
                ];
                row.extend(p.time_to_answer.iter().map(|(_, n)| n.to_string()));
                row
            })
            .collect(),
    };
    let group = |title: &str, list: &[crate::report::answered::GroupAnswer]| Table {
        title: title.into(),
        header: vec![
            "".into(),
            "answered".into(),
            "median to first answer".into(),
            "90th percentile".into(),
        ],
        rows: list
            .iter()
            .map(|g| {
                vec![
                    g.key.clone(),
                    rate(&g.answered),
                    hours(g.median_hours),
                    hours(g.p90_hours),
                ]
            })
            .collect(),
    };
    let overdue = Table {
        title: format!(
            "Overdue with no answer ({}{})",
            a.overdue.len(),
            if a.overdue.len() > QUEUE_ROWS {
                format!("; first {QUEUE_ROWS}, the JSON has all")
            } else {
                String::new()
            }
        ),
        header: [
            "priority",
            "overdue by",
            "attempts",
            "flags",
            "why",
            "staff",
            "location",
            "comment",
        ]
        .map(String::from)
        .to_vec(),
        rows: a
            .overdue
            .iter()
            .take(QUEUE_ROWS)
            .map(|o| {
                vec![
                    o.priority.clone(),
                    age(o.hours_overdue),
                    o.attempts.to_string(),
                    o.flags.join(", "),
                    o.evidence.clone(),
                    opt(&o.staff_id).to_string(),
                    opt(&o.location).to_string(),
                    format!("{} ({})", o.text, o.id),
                ]
            })
            .collect(),
    };
    let repeats = Table {
        title: "Customers who came back with the same complaint".into(),
        header: [
            "customer (hashed)",
            "comments",
            "repeats",
            "latest",
            "anyone answered?",
        ]
        .map(String::from)
        .to_vec(),
        rows: a
            .repeat_customers
            .iter()
            .map(|c| {
                vec![
                    c.customer_id.chars().take(12).collect::<String>(),
                    c.comments.to_string(),
                    c.repeats.to_string(),
                    c.latest.clone(),
                    if c.answered { "yes" } else { "no" }.into(),
                ]
            })
            .collect(),
    };
    let themes = Table {
        title: "Asked, acted: per theme, negative comments that got an action and an answer".into(),
        header: [
            "theme",
            "negative",
            "queued",
            "answered",
            "last 7 days",
            "7 days before",
        ]
        .map(String::from)
        .to_vec(),
        rows: a
            .themes
            .iter()
            .map(|t| {
                vec![
                    t.label.clone(),
                    t.negative.to_string(),
                    rate(&t.acted),
                    rate(&t.answered),
                    t.last_7_days.to_string(),
                    t.previous_7_days.to_string(),
                ]
            })
            .collect(),
    };
    let mut notes: Vec<String> = a
        .themes
        .iter()
        .filter_map(|t| {
            t.warning
                .as_ref()
                .map(|w| format!("Theme “{}”: {w}.", t.label))
        })
        .collect();
    if a.unmatched + a.duplicates + a.early > 0 {
        notes.push(format!(
            "Responses to comments never queued: {}; sent twice (counted once): {}; dated before their comment (counted as answered at once): {}.",
            a.unmatched, a.duplicates, a.early
        ));
    }
    (
        intro,
        vec![
            priorities,
            group("By channel of the comment", &a.by_channel),
            group("By location", &a.by_location),
            overdue,
            repeats,
            themes,
        ],
        notes,
    )
}

/// A theme's label with its target (themes per mention) and keywords, as
/// HTML.
fn label_html(t: &ThemeRow) -> String {
    let target = t
        .target
        .as_deref()
        .map(|x| format!("<span class=\"muted\">{}:</span> ", escape(x)))
        .unwrap_or_default();
    if t.keywords.is_empty() {
        format!("{target}{}", escape(&t.label))
    } else {
        format!(
            "{target}{} <span class=\"muted\">({})</span>",
            escape(&t.label),
            escape(&t.keywords.join(", "))
        )
    }
}

/// A theme's label with its target (themes per mention) and keywords, as
/// text.
fn label_text(t: &ThemeRow) -> String {
    let target = t
        .target
        .as_deref()
        .map(|x| format!("{x}: "))
        .unwrap_or_default();
    if t.keywords.is_empty() {
        format!("{target}{}", t.label)
    } else {
        format!("{target}{} ({})", t.label, t.keywords.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ReportBuilder, Row};
    use chrono::{TimeZone, Utc};

    #[test]
    fn every_section_renders_and_text_is_escaped() {
        let rows = vec![Row {
            id: "c1".into(),
            event_time: Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap(),
            text: "<script>alert(1)</script> please call me".into(),
            staff_id: Some("S1".into()),
            sentiment: Some("negative".into()),
            flags: vec![("contact_requested".into(), "call me".into())],
            score: Some(3.0),
            ..Row::default()
        }];
        let r = ReportBuilder::new("out").compute(&rows);
        let h = html(&r);
        for (id, title) in SECTIONS {
            assert!(
                h.contains(&format!("<section id=\"{id}\"><h2>{title}</h2>")),
                "{id}"
            );
        }
        assert!(!h.contains("<script>"));
        assert!(h.contains("&lt;script&gt;"));
        assert!(!h.contains(" src=") && !h.contains("href=\"http") && !h.contains("url("));
        let md = markdown(&r);
        for (_, title) in SECTIONS {
            assert!(md.contains(&format!("## {title}")), "{title}");
        }
    }

    #[test]
    fn a_mention_theme_shows_its_target_before_its_label() {
        let row = |target: Option<&str>, keywords: &[&str]| ThemeRow {
            id: 1,
            label: "app <crashes>".into(),
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            target: target.map(str::to_string),
            count: 1,
            last_7_days: 0,
            previous_7_days: 0,
            daily: Vec::new(),
            sentiment: [1, 0, 0],
            complaint_share: super::super::ComplaintShare {
                staff: 0.0,
                product: 1.0,
                process: 0.0,
            },
            examples: Vec::new(),
            spikes: Vec::new(),
            impact: None,
        };
        let t = row(Some("product"), &["camera"]);
        assert_eq!(label_text(&t), "product: app <crashes> (camera)");
        assert_eq!(
            label_html(&t),
            "<span class=\"muted\">product:</span> app &lt;crashes&gt; <span class=\"muted\">(camera)</span>"
        );
        assert_eq!(label_text(&row(None, &[])), "app <crashes>");
    }
}
