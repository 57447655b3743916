//! Language identification with `whatlang` (trigram and script models, no
//! network, no model files). Writes an ISO 639-1 code and whatlang's
//! confidence; later stages decide, per model manifest, what they can read.

use super::{Operator, OperatorError};
use crate::batch::CommentBatch;

/// ISO 639-3 (whatlang) to ISO 639-1, for every language whatlang knows.
const ISO_639_1: [(&str, &str); 70] = [
    ("afr", "af"),
    ("aka", "ak"),
    ("amh", "am"),
    ("ara", "ar"),
    ("aze", "az"),
    ("bel", "be"),
    ("ben", "bn"),
    ("bul", "bg"),
    ("cat", "ca"),
    ("ces", "cs"),
    ("cmn", "zh"),
    ("cym", "cy"),
    ("dan", "da"),
    ("deu", "de"),
    ("ell", "el"),
    ("eng", "en"),
    ("epo", "eo"),
    ("est", "et"),
    ("fin", "fi"),
    ("fra", "fr"),
    ("guj", "gu"),
    ("heb", "he"),
    ("hin", "hi"),
    ("hrv", "hr"),
    ("hun", "hu"),
    ("hye", "hy"),
    ("ind", "id"),
    ("ita", "it"),
    ("jav", "jv"),
    ("jpn", "ja"),
    ("kan", "kn"),
    ("kat", "ka"),
    ("khm", "km"),
    ("kor", "ko"),
    ("lat", "la"),
    ("lav", "lv"),
    ("lit", "lt"),
    ("mal", "ml"),
    ("mar", "mr"),
    ("mkd", "mk"),
    ("mya", "my"),
    ("nep", "ne"),
    ("nld", "nl"),
    ("nob", "nb"),
    ("ori", "or"),
    ("pan", "pa"),
    ("pes", "fa"),
    ("pol", "pl"),
    ("por", "pt"),
    ("ron", "ro"),
    ("rus", "ru"),
    ("sin", "si"),
    ("slk", "sk"),
    ("slv", "sl"),
    ("sna", "sn"),
    ("spa", "es"),
    ("srp", "sr"),
    ("swe", "sv"),
    ("tam", "ta"),
    ("tel", "te"),
    ("tgl", "tl"),
    ("tha", "th"),
    ("tuk", "tk"),
    ("tur", "tr"),
    ("ukr", "uk"),
    ("urd", "ur"),
    ("uzb", "uz"),
    ("vie", "vi"),
    ("yid", "yi"),
    ("zul", "zu"),
];

/// The ISO 639-1 code for a whatlang language (its 639-3 code if unmapped).
pub fn iso_639_1(lang: whatlang::Lang) -> &'static str {
    let code = lang.code();
    ISO_639_1
        .iter()
        .find(|(three, _)| *three == code)
        .map(|(_, two)| *two)
        .unwrap_or(code)
}

/// Detects a text's language: `(ISO 639-1 code, confidence 0..1)`, or `None`
/// when there is nothing to go on (no letters).
pub fn detect(text: &str) -> Option<(&'static str, f32)> {
    whatlang::detect(text).map(|i| (iso_639_1(i.lang()), i.confidence() as f32))
}

/// Sets `language` and `language_confidence` on every comment.
#[derive(Debug, Default)]
pub struct LanguageOperator;

impl Operator for LanguageOperator {
    fn name(&self) -> &str {
        "language"
    }

    fn process_batch(&mut self, batch: &mut CommentBatch) -> Result<(), OperatorError> {
        for c in &mut batch.comments {
            if let Some((code, conf)) = detect(&c.text) {
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
    fn english_and_russian() {
        assert_eq!(
            detect("The engineer was lovely but the app keeps crashing every evening").map(|x| x.0),
            Some("en")
        );
        assert_eq!(
            detect("Связь пропадает каждый вечер, перезвоните мне пожалуйста").map(|x| x.0),
            Some("ru")
        );
        assert_eq!(detect("1234 !!! 😀"), None);
    }

    #[test]
    fn every_whatlang_language_maps_to_two_letters() {
        for l in whatlang::Lang::all() {
            assert_eq!(iso_639_1(*l).len(), 2, "{l:?}");
        }
    }
}
