//! Language identification with `whatlang` (trigram and script models, no
//! network, no model files), among the languages a pipeline expects
//! (`nlp.languages`, default English and Russian). Choosing among all 70
//! languages it knows, whatlang calls short Russian comments Bulgarian or
//! Ukrainian and short English ones Danish or Afrikaans (seen on the demo
//! sample); an allowlist fixes that. Writes an ISO 639-1 code and whatlang's
//! confidence; later stages decide, per model manifest, what they can read.

use super::{Operator, OperatorError};
use crate::batch::CommentBatch;
use crate::comment::language::{from_iso_639_1, iso_639_1};

/// Detects languages among an allowlist.
pub struct LanguageDetector {
    inner: whatlang::Detector,
}

impl LanguageDetector {
    /// A detector choosing among these ISO 639-1 codes (unknown codes are
    /// refused by config validation before this is built).
    pub fn new(codes: &[String]) -> Self {
        let langs: Vec<whatlang::Lang> = codes.iter().filter_map(|c| from_iso_639_1(c)).collect();
        let inner = if langs.is_empty() {
            whatlang::Detector::new()
        } else {
            whatlang::Detector::with_allowlist(langs)
        };
        Self { inner }
    }

    /// `(ISO 639-1 code, confidence 0..1)`, or `None` when there is nothing
    /// to go on (no letters).
    pub fn detect(&self, text: &str) -> Option<(&'static str, f32)> {
        self.inner
            .detect(text)
            .map(|i| (iso_639_1(i.lang()), i.confidence() as f32))
    }
}

/// Sets `language` and `language_confidence` on every comment.
pub struct LanguageOperator {
    detector: LanguageDetector,
}

impl LanguageOperator {
    /// Detection among these ISO 639-1 codes.
    pub fn new(codes: &[String]) -> Self {
        Self {
            detector: LanguageDetector::new(codes),
        }
    }
}

impl Operator for LanguageOperator {
    fn name(&self) -> &str {
        "language"
    }

    fn process_batch(&mut self, batch: &mut CommentBatch) -> Result<(), OperatorError> {
        for c in &mut batch.comments {
            if let Some((code, conf)) = self.detector.detect(&c.text) {
                c.nlp.language = Some(code);
                c.nlp.language_confidence = Some(conf);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_and_russian_among_the_allowlist() {
        let d = LanguageDetector::new(&["en".into(), "ru".into()]);
        let lang = |t: &str| d.detect(t).map(|x| x.0);
        assert_eq!(
            lang("The engineer was lovely but the app keeps crashing every evening"),
            Some("en")
        );
        assert_eq!(
            lang("Связь пропадает каждый вечер, перезвоните мне пожалуйста"),
            Some("ru")
        );
        // Short texts that whatlang, choosing among all languages, gets wrong.
        assert_eq!(lang("Коробка пришла мятая, товар разбит."), Some("ru"));
        assert_eq!(
            lang("Mortgage advisor was excellent, clear and honest."),
            Some("en")
        );
        assert_eq!(lang("1234 !!! 😀"), None);
        let all = LanguageDetector::new(&[]);
        assert_eq!(
            all.detect("Der Techniker war sehr freundlich und hat alles erklärt")
                .map(|x| x.0),
            Some("de")
        );
    }
}
