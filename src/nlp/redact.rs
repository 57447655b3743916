//! PII redaction: emails, card numbers (Luhn-checked) and phone numbers are
//! replaced by `[EMAIL]`, `[CARD]`, `[PHONE]` before anything is written.
//! Runs first, so later stages, the `text` column and the raw bytes of
//! rejected messages never carry the originals. (The dead-letter topic gets
//! the message unchanged: it is Kafka, not disk, and exists for replay.)

use std::borrow::Cow;

use regex::bytes::{Captures, Regex};

use super::{Operator, OperatorError};
use crate::batch::CommentBatch;

/// Finds and replaces PII in text or bytes.
pub struct Redactor {
    email: Regex,
    digits: Regex,
    date: Regex,
}

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

impl Redactor {
    /// Compiles the patterns.
    pub fn new() -> Result<Self, regex::Error> {
        Ok(Self {
            email: Regex::new(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b")?,
            // A run of digits with the separators phone and card numbers use.
            digits: Regex::new(r"[+(]?\d[\d \t().-]{6,24}\d")?,
            date: Regex::new(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")?,
        })
    }

    /// Redacts `input`; returns the result and how many spans were replaced.
    pub fn redact_bytes<'a>(&self, input: &'a [u8]) -> (Cow<'a, [u8]>, u32) {
        let mut n = 0u32;
        let out = self.email.replace_all(input, |_: &Captures<'_>| {
            n += 1;
            b"[EMAIL]".to_vec()
        });
        let out = match self.redact_numbers(&out, &mut n) {
            Some(v) => Cow::Owned(v),
            None => out,
        };
        (out, n)
    }

    fn redact_numbers(&self, input: &[u8], n: &mut u32) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut last = 0;
        let mut changed = false;
        for m in self.digits.find_iter(input) {
            let span = m.as_bytes();
            let digits: Vec<u8> = span.iter().copied().filter(u8::is_ascii_digit).collect();
            let trimmed = span.trim_ascii();
            let replacement: &[u8] = if (13..=19).contains(&digits.len()) && luhn(&digits) {
                b"[CARD]"
            } else if (9..=15).contains(&digits.len()) && !self.date.is_match(trimmed) {
                b"[PHONE]"
            } else {
                continue;
            };
            out.extend_from_slice(&input[last..m.start()]);
            out.extend_from_slice(replacement);
            last = m.end();
            changed = true;
            *n += 1;
        }
        if !changed {
            return None;
        }
        out.extend_from_slice(&input[last..]);
        Some(out)
    }

    /// Redacts text, borrowing it when there is nothing to replace (most
    /// comments). Replacements are ASCII and replace whole ASCII matches, so
    /// valid UTF-8 stays valid.
    pub fn redact<'a>(&self, text: &'a str) -> (Cow<'a, str>, u32) {
        match self.redact_bytes(text.as_bytes()) {
            (Cow::Borrowed(_), n) => (Cow::Borrowed(text), n),
            (Cow::Owned(b), n) => (Cow::Owned(String::from_utf8_lossy(&b).into_owned()), n),
        }
    }
}

/// The redaction stage over comments and rejected messages.
pub struct RedactOperator {
    redactor: Redactor,
}

impl RedactOperator {
    /// A redaction stage.
    pub fn new() -> Result<Self, regex::Error> {
        Ok(Self {
            redactor: Redactor::new()?,
        })
    }
}

impl Operator for RedactOperator {
    fn name(&self) -> &str {
        "redact"
    }

    fn process_batch(&mut self, batch: &mut CommentBatch) -> Result<(), OperatorError> {
        for c in &mut batch.comments {
            let (text, n) = self.redactor.redact(&c.text);
            if let Cow::Owned(t) = text {
                c.text = t;
            }
            c.nlp.pii_redacted = Some(n);
        }
        for r in &mut batch.rejected {
            if let (Cow::Owned(v), _) = self.redactor.redact_bytes(&r.raw) {
                r.raw = v;
            }
        }
        for r in &mut batch.responses {
            if let Some(note) = &mut r.note {
                if let (Cow::Owned(t), _) = self.redactor.redact(note) {
                    *note = t;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> (String, u32) {
        let (t, n) = Redactor::new().unwrap().redact(s);
        (t.into_owned(), n)
    }

    #[test]
    fn redacts_emails_cards_and_phones() {
        assert_eq!(
            r("write to anna.k+news@mail.example.co.uk today"),
            ("write to [EMAIL] today".into(), 1)
        );
        assert_eq!(
            r("card 4111 1111 1111 1111 was charged twice").0,
            "card [CARD] was charged twice"
        );
        assert_eq!(
            r("call me on +44 (0)20 7946 0958 please").0,
            "call me on [PHONE] please"
        );
        assert_eq!(
            r("мой номер +7 (912) 345-67-89, перезвоните").0,
            "мой номер [PHONE], перезвоните"
        );
        assert_eq!(
            r("07700 900123 or john@x.io"),
            ("[PHONE] or [EMAIL]".into(), 2)
        );
    }

    #[test]
    fn leaves_ordinary_numbers_alone() {
        for s in [
            "order ORD-100123 arrived on 2026-11-22 at 10:15",
            "paid 1 250.00 for 3 items",
            "waited 50 minutes, 10/10 would not recommend",
            "card ending 1234",
            "ticket 12345678",
        ] {
            assert_eq!(r(s), (s.to_string(), 0), "{s}");
        }
        // 16 digits that fail Luhn are not a card (and too long for a phone).
        assert_eq!(r("ref 1234 5678 9012 3456").1, 0);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_still_redacted() {
        let red = Redactor::new().unwrap();
        let (out, n) = red.redact_bytes(b"\xff bad bytes, mail me: a@b.com \xfe");
        assert_eq!(n, 1);
        assert_eq!(&*out, b"\xff bad bytes, mail me: [EMAIL] \xfe");
    }
}
