//! Follow-up flags from patterns, English and Russian: each raised flag
//! keeps the span of text that raised it, so a person can see why.
//!
//! Built-in flags (each also a boolean column): `contact_requested`,
//! `repeat_issue`, `score_solicited`, `survey_fatigue`, `safety_risk`. A
//! pipeline can add patterns (and exclusions) to them, or define new flags,
//! under `[flags.<name>]`; every raised flag is listed in the `flags` column.
//! Patterns of all languages apply to every comment: the scripts do not
//! collide, and short texts are often misidentified.

use std::collections::BTreeMap;

use regex::Regex;

use super::{Operator, OperatorError};
use crate::batch::CommentBatch;
use crate::comment::{Evidence, BUILT_IN_FLAGS};
use crate::config::{compile_pattern, FlagPatternError, FlagPatterns};

fn defaults() -> Vec<(
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
)> {
    vec![
        (
            "contact_requested",
            &[
                r"\b(call|ring|phone|contact|email|e-mail|text|message) me\b",
                r"\b(call|ring|get) (me )?back( to me)?\b",
                r"\bplease (call|contact|ring|phone)\b",
                r"\b(want|need|would like|expect) (someone|somebody|a manager|a call|to (speak|talk))\b",
                r"\bescalat(e|ed|ion)\b",
                r"\b(speak|talk) to (a|the|your) (manager|supervisor|human|person|someone)\b",
                r"\bsomeone (to )?(call|contact|ring|phone)",
                r"\bcall back\b",
                // A request ("перезвоните", "прошу перезвонить", "жду
                // перезвона"), not a call that happened ("перезвонил").
                r"перезвон(ите|ить|и|ят|а)\b",
                r"свяж\w*(ся)? со мной",
                r"связаться со мной",
                r"позвоните",
                r"напишите мне",
            ],
            &[
                r"\bcall me (crazy|old[- ]fashioned)\b",
                // Contact declined, not asked for: "no need to contact me",
                // "I don't need anyone to call me".
                r"\b(no need|don'?t need|do not need|needn'?t|not necessary)( for)?( (anyone|anybody|someone|somebody|you))?( to)? (call|contact|ring|phone|get back|email|e-mail|text|reach)",
                r"\b(don'?t|do not|no need to) (call|contact|ring|phone) (me|us)\b",
                r"не (нужно|надо|обязательно|стоит)( мне)? (звонить|перезванивать|связываться|писать)",
                r"(звонить|перезванивать|связываться) (мне )?не (нужно|надо)",
                r"не (звоните|перезванивайте)",
            ],
        ),
        (
            "repeat_issue",
            &[
                r"\b(second|third|fourth|fifth|2nd|3rd|4th|5th|another) (time|complaint|call)\b",
                r"\b(two|three|four|five|several|many|multiple) times\b",
                r"\bstill (not|no|waiting|broken|down|wrong|hasn't|haven't|isn't|doesn't|does not|is not)\b",
                r"\b(never|not) (been )?(fixed|resolved|sorted|answered)\b",
                r"\bno (answer|reply|response|one (has )?(called|replied|answered))\b",
                r"\bnobody (has )?(got back|replied|answered|called|rang|contacted|told)",
                r"\b(again|once again|repeatedly|every time)\b",
                r"\b(complained|reported|called|rang|asked|chased|emailed) (\w+ )?(already|before|twice)\b",
                r"(второй|третий|четв[её]ртый|пятый|не первый) раз",
                r"\bснова\b",
                r"\bопять\b",
                r"до сих пор",
                r"по-прежнему",
                r"ответа нет|так и не (ответил|перезвонил|решил)",
                r"никто не (ответил|перезвонил|связался)",
                r"\bуже (второй|третий|не первый|несколько)",
                r"повторно",
            ],
            &[
                r"\b(come|go|stay|visit|book|order|buy|use|recommend)\w* (\w+ )?again\b",
                r"\bagain soon\b",
                r"\bwould (\w+ )?again\b",
            ],
        ),
        (
            "score_solicited",
            &[
                r"\b(ask\w*|begg?\w*|told|pressur\w*|push\w*|want\w*|beg) (me|us) (to )?(give|rate|score|leave|put|mark|mention)\b",
                r"\b(give|gave|leave|left|rate|score)d? (him|her|them|us)( a)? (10|ten|9|nine|5 stars?|five stars?|full marks|top marks)\b",
                r"\b(10|ten|5 stars?|five stars?|5 star)\b[^.]{0,60}\b(bonus|targets?|commission|job|pay|salary)\b",
                r"\b(bonus|commission|targets?|job|pay|salary) (depends|is based|relies|counts) on\b",
                r"\bbecause of (his|her|their) targets\b",
                r"\bfree \w+ if (i|we) (gave|give|rate|left)\b",
                r"\bif (i|we) gave\b[^.]{0,30}\b(10|ten|5 stars?|five stars?)\b",
                r"попросил\w* (поставить|оценить|дать)",
                r"просил\w* (поставить|оценить)",
                r"постав\w* (ему|ей|им)?\s*(десятку|10|пять зв[её]зд|5 зв[её]зд|высшую оценку)",
                r"от (этого|оценки|отзыва) завис\w* (его|её|ее|их)?\s*(зарплата|премия|бонус)",
                r"лишат премии",
            ],
            &[],
        ),
        (
            "survey_fatigue",
            &[
                r"\b(stop|quit|please stop) (sending|asking|emailing|texting|spamming)\b[^.]{0,40}\b(surveys?|feedback|rating|rate|reviews?|questionnaires?|how we did)",
                r"\b(too many|so many|another|every single)\b[^.]{0,30}\b(surveys?|feedback (requests|emails)|rating requests?|questionnaires?)",
                r"\b(surveys?|feedback|rating|rate)\b[^.]{0,40}\b(after|for) (every|each) (single )?(call|time|visit|purchase|login|top-up|parcel|delivery|stay)",
                r"\b(enough|sick of|tired of|fed up with)\b[^.]{0,20}\b(surveys?|feedback requests?)\b",
                r"\b(emails?|texts?) (and|or) (texts?|surveys?)\b[^.]{0,30}\b(how we did|asking)",
                r"\bi ignore them\b",
                r"(хватит|перестаньте|надоело)[^.]{0,40}(опрос|оцен|отзыв)",
                r"(опрос\w*|оцен\w*|отзыв\w*)[^.]{0,40}(после каждого|каждый раз)",
                r"каждый раз[^.]{0,40}(просят оценить|опрос)",
            ],
            &[],
        ),
        (
            "safety_risk",
            &[
                r"\b(dangerous|danger|unsafe|not safe|hazard\w*|fire hazard|safety (issue|risk|hazard))\b",
                r"\b(could|might|will) (have )?(been |be |get )?(killed|hurt|injured)\b",
                r"\bsomeone (could|will|might) (get |be )?(hurt|injured|killed)\b",
                r"\b(exposed|loose|hanging|live) (electrical )?(wires?|cables?)\b",
                r"\b(slipped|tripped|fell|burnt|burned|scalded|injured|hurt) (\w+ )?(my|her|his|their|our)? ?(hand|wrist|arm|leg|head|back|ankle|knee|finger)?",
                r"\b(glass in|nut allergy|allergic reaction|food poisoning|pink inside|raw in the middle|was sick all night)\b",
                r"\b(smoke alarm|fire alarm|gas leak|carbon monoxide|bed ?bugs)\b",
                r"\b(stranded|hard shoulder|motorway verge)\b",
                r"\bterrif(ying|ied)\b",
                // Not inside "безопасн…" (safe, safety).
                r"\bопасн\w*",
                r"угроз\w* (жизни|здоровью)",
                r"поскользнул\w*",
                r"ушиб\w*",
                r"травм\w*",
                r"оголённ\w* провод\w*|оголенн\w* провод\w*",
            ],
            &[
                r"\bnot (at all )?dangerous\b",
                r"\bfelt safe\b",
                r"\b(feel|feels|felt) (much |a lot |far |so much )?safer\b",
                r"\bno (danger|hazard)s? (of|to)\b",
                r"\b(никаких|нет никакой|без) опасн\w*",
            ],
        ),
    ]
}

#[derive(Clone)]
struct Flag {
    name: String,
    patterns: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl Flag {
    /// Whether one of the flag's exclusions matches the sentence around
    /// bytes `start..end` of `text`.
    fn excludes(&self, text: &str, start: usize, end: usize) -> bool {
        let sentence = sentence_around(text, start, end);
        self.exclude.iter().any(|x| x.is_match(sentence))
    }
}

/// Raises flags on comments.
#[derive(Clone)]
pub struct FlagMatcher {
    flags: Vec<Flag>,
}

/// The sentence around a byte offset: from the previous sentence end to the next.
fn sentence_around(text: &str, start: usize, end: usize) -> &str {
    let is_end = |c: char| matches!(c, '.' | '!' | '?' | '\n' | ';');
    let s = text[..start].rfind(is_end).map(|i| i + 1).unwrap_or(0);
    let e = text[end..]
        .find(is_end)
        .map(|i| end + i)
        .unwrap_or(text.len());
    &text[s..e]
}

impl FlagMatcher {
    /// The built-in flags plus a pipeline's additions (`[flags.<name>]`).
    pub fn new(extra: &BTreeMap<String, FlagPatterns>) -> Result<Self, FlagPatternError> {
        let mut flags = Vec::new();
        for (name, pats, excl) in defaults() {
            let add = extra.get(name);
            let patterns = pats
                .iter()
                .map(|p| p.to_string())
                .chain(add.into_iter().flat_map(|a| a.patterns.clone()))
                .map(|p| compile_pattern(name, &p))
                .collect::<Result<_, _>>()?;
            let exclude = excl
                .iter()
                .map(|p| p.to_string())
                .chain(add.into_iter().flat_map(|a| a.exclude.clone()))
                .map(|p| compile_pattern(name, &p))
                .collect::<Result<_, _>>()?;
            flags.push(Flag {
                name: name.to_string(),
                patterns,
                exclude,
            });
        }
        for (name, p) in extra {
            if BUILT_IN_FLAGS.contains(&name.as_str()) {
                continue;
            }
            flags.push(Flag {
                name: name.clone(),
                patterns: p
                    .patterns
                    .iter()
                    .map(|x| compile_pattern(name, x))
                    .collect::<Result<_, _>>()?,
                exclude: p
                    .exclude
                    .iter()
                    .map(|x| compile_pattern(name, x))
                    .collect::<Result<_, _>>()?,
            });
        }
        Ok(Self { flags })
    }

    /// Every flag the text raises, with the first span that raised it.
    pub fn evidence(&self, text: &str) -> Vec<Evidence> {
        let mut out = Vec::new();
        for f in &self.flags {
            let hit = f
                .patterns
                .iter()
                .flat_map(|p| p.find_iter(text))
                .filter(|m| !f.excludes(text, m.start(), m.end()))
                .min_by_key(|m| m.start());
            if let Some(m) = hit {
                out.push(Evidence {
                    flag: f.name.clone(),
                    start: text[..m.start()].chars().count() as u32,
                    end: text[..m.end()].chars().count() as u32,
                    text: m.as_str().to_string(),
                });
            }
        }
        out
    }
}

impl FlagMatcher {
    /// Whether `e` (raised by anything: a pattern, a learned head, example
    /// phrases) sits in a sentence one of its flag's exclusions matches:
    /// "no need to contact me" withdraws contact_requested whatever raised
    /// it. A flag the matcher does not know is never excluded.
    pub fn excluded(&self, text: &str, e: &Evidence) -> bool {
        let Some(f) = self.flags.iter().find(|f| f.name == e.flag) else {
            return false;
        };
        let byte = |chars: u32| {
            text.char_indices()
                .nth(chars as usize)
                .map_or(text.len(), |(b, _)| b)
        };
        let start = byte(e.start);
        // A clause's span ends after its full stop: the sentence is the
        // one the span's words sit in, not the next one.
        let end = byte(e.end).max(start);
        let words = text[start..end]
            .trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '.' | '!' | '?' | ';'));
        f.excludes(text, start, start + words.len())
    }
}

/// The flag stage.
pub struct FlagOperator {
    matcher: FlagMatcher,
}

impl FlagOperator {
    /// A flag stage over a matcher.
    pub fn new(matcher: FlagMatcher) -> Self {
        Self { matcher }
    }
}

impl Operator for FlagOperator {
    fn name(&self) -> &str {
        "flags"
    }

    fn process_batch(&mut self, batch: &mut CommentBatch) -> Result<(), OperatorError> {
        for c in &mut batch.comments {
            c.nlp.flags = Some(self.matcher.evidence(&c.text));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(text: &str) -> Vec<String> {
        let m = FlagMatcher::new(&BTreeMap::new()).unwrap();
        m.evidence(text).into_iter().map(|e| e.flag).collect()
    }

    #[test]
    fn english_flags() {
        assert_eq!(
            flags(
                "Third time I have reported this and it is still not fixed. Please call me back."
            ),
            vec!["contact_requested", "repeat_issue"]
        );
        assert_eq!(flags("The engineer asked me to give him a 10 on the survey because his bonus depends on it."), vec!["score_solicited"]);
        assert_eq!(
            flags("Stop sending me a survey after every single call, I have had six this month."),
            vec!["survey_fatigue"]
        );
        assert_eq!(
            flags("Exposed cable left hanging across the pavement, someone will trip."),
            vec!["safety_risk"]
        );
        assert!(flags("Great food, friendly staff, we will come again!").is_empty());
    }

    #[test]
    fn russian_flags() {
        assert_eq!(
            flags("Интернет пропадает, это уже третий раз. Перезвоните мне."),
            vec!["contact_requested", "repeat_issue"]
        );
        assert_eq!(
            flags("Монтажник попросил поставить ему десятку, иначе лишат премии."),
            vec!["score_solicited"]
        );
        assert_eq!(
            flags("Хватит присылать опросы после каждого звонка."),
            vec!["survey_fatigue"]
        );
        assert_eq!(
            flags("Мокрый пол у входа, я поскользнулась. Это опасно."),
            vec!["safety_risk"]
        );
    }

    #[test]
    fn evidence_spans_are_in_characters() {
        let m = FlagMatcher::new(&BTreeMap::new()).unwrap();
        let text = "Связь плохая. Перезвоните мне.";
        let e = &m.evidence(text)[0];
        let span: String = text
            .chars()
            .skip(e.start as usize)
            .take((e.end - e.start) as usize)
            .collect();
        assert_eq!(span, e.text);
        assert_eq!(e.text.to_lowercase(), "перезвоните");
    }

    #[test]
    fn pipelines_add_patterns_and_flags() {
        let mut extra = BTreeMap::new();
        extra.insert(
            "billing_dispute".to_string(),
            FlagPatterns {
                patterns: vec![r"\bcharged (me )?twice\b".into()],
                exclude: vec![],
                ..Default::default()
            },
        );
        let m = FlagMatcher::new(&extra).unwrap();
        let got: Vec<_> = m
            .evidence("You charged me twice")
            .into_iter()
            .map(|e| e.flag)
            .collect();
        assert_eq!(got, vec!["billing_dispute"]);
        extra.insert(
            "broken".into(),
            FlagPatterns {
                patterns: vec!["(".into()],
                exclude: vec![],
                ..Default::default()
            },
        );
        let e = FlagMatcher::new(&extra).err().unwrap().to_string();
        assert!(e.contains("flags.broken"), "{e}");
    }

    #[test]
    fn declined_contact_and_praised_safety_raise_nothing() {
        // (flag, raised?, texts)
        let cases: [(&str, bool, &[&str]); 4] = [
            (
                "contact_requested",
                false,
                &[
                    "Cheap and quick, no need to contact me.",
                    "Results came by text the same day, I don't need anyone to call me.",
                    "The new dashboard is brilliant, no need to get back to me.",
                    "Всё решили, перезванивать не нужно.",
                    "Не нужно мне звонить, всё понятно.",
                    "Мой консультант перезвонил в течение часа, как и обещал.",
                ],
            ),
            (
                "contact_requested",
                true,
                &[
                    "Please call me back about the bill.",
                    "No need to apologise. Please call me back.",
                    "Перезвоните мне, пожалуйста.",
                    "Жду перезвона уже неделю.",
                    "Прошу перезвонить по поводу счёта.",
                ],
            ),
            (
                "safety_risk",
                false,
                &[
                    "New lighting at the station makes it feel much safer at night.",
                    "Flood cover was explained well, no danger of surprises.",
                    "У машины отличный рейтинг безопасности.",
                    "Страховку объяснили хорошо, никаких опасных сюрпризов.",
                ],
            ),
            (
                "safety_risk",
                true,
                &[
                    "The stairs are dangerous at night.",
                    "Опасная проводка в подъезде.",
                    "Это опасно для детей.",
                ],
            ),
        ];
        for (flag, raised, texts) in cases {
            for t in texts {
                assert_eq!(flags(t).iter().any(|x| x == flag), raised, "{flag}: {t}");
            }
        }
    }

    #[test]
    fn exclusions_withdraw_evidence_from_any_source() {
        let m = FlagMatcher::new(&BTreeMap::new()).unwrap();
        let text = "The app is great. No need to contact me.";
        let at = |start: u32, end: u32| Evidence {
            flag: "contact_requested".into(),
            start,
            end,
            text: String::new(),
        };
        // A learned head's evidence in the excluded sentence, then in the other.
        assert!(m.excluded(text, &at(18, 40)));
        assert!(!m.excluded(text, &at(0, 17)));
        let other = Evidence {
            flag: "unknown_flag".into(),
            ..at(18, 40)
        };
        assert!(!m.excluded(text, &other));
        // "Don't feel safe" is a danger (raised by the learned head): not
        // excluded, though "feel … safer" is.
        let unsafe_text = "No lighting at night, I don't feel safe using it.";
        let danger = Evidence {
            flag: "safety_risk".into(),
            ..at(0, unsafe_text.chars().count() as u32)
        };
        assert!(!m.excluded(unsafe_text, &danger));
        // Character offsets, not bytes: the same in Russian.
        let ru = "Приложение отличное. Перезванивать не нужно.";
        let start = ru
            .find("Перезванивать")
            .map(|b| ru[..b].chars().count())
            .unwrap() as u32;
        assert!(m.excluded(ru, &at(start, ru.chars().count() as u32)));
        assert!(!m.excluded(ru, &at(0, 19)));
    }
}
