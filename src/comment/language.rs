//! Language codes as the record writes them: ISO 639-1 in the `language`
//! column, mapped to and from the detector's (whatlang's) ISO 639-3 names.

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

/// The whatlang language for an ISO 639-1 code, if whatlang knows it.
pub fn from_iso_639_1(code: &str) -> Option<whatlang::Lang> {
    ISO_639_1
        .iter()
        .find(|(_, two)| *two == code)
        .and_then(|(three, _)| whatlang::Lang::from_code(*three))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_whatlang_language_maps_to_two_letters_and_back() {
        for l in whatlang::Lang::all() {
            let two = iso_639_1(*l);
            assert_eq!(two.len(), 2, "{l:?}");
            assert_eq!(from_iso_639_1(two), Some(*l));
        }
    }
}
