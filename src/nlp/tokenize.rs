//! Tokenization with the `tokenizers` crate from the model's tokenizer.json:
//! no padding (batches are padded to their own longest row), truncation at
//! the model's max length with a flag, parallel over a batch with rayon.

use std::path::Path;

use rayon::prelude::*;
use tokenizers::{Tokenizer, TruncationParams};

/// Errors from the tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    /// tokenizer.json could not be loaded.
    #[error("loading {path}: {message}. Fix: run `bash models/setup.sh`")]
    Load {
        /// The file.
        path: String,
        /// The tokenizer's message.
        message: String,
    },
    /// A text could not be tokenized (never seen on valid UTF-8; kept as an error, not a panic).
    #[error("tokenizing: {0}")]
    Encode(String),
}

/// One tokenized text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// Token ids, with the special tokens.
    pub ids: Vec<u32>,
    /// The text was longer than the model reads and was cut.
    pub truncated: bool,
    /// Each token's `[start, end)` in characters of the text (special
    /// tokens `(0, 0)`); empty unless the tokenizer was built
    /// [`TextTokenizer::with_offsets`].
    pub offsets: Vec<(u32, u32)>,
}

/// A tokenizer set up for inference.
pub struct TextTokenizer {
    inner: Tokenizer,
    max_len: usize,
    offsets: bool,
    /// Put before every text (the model's manifest `prefix`).
    prefix: String,
    /// `prefix` in characters: token offsets are shifted back by this.
    prefix_chars: u32,
}

impl TextTokenizer {
    /// Loads tokenizer.json, turns padding off and truncates at `max_len` tokens.
    pub fn from_file(path: &Path, max_len: usize) -> Result<Self, TokenizeError> {
        let load_err = |message: String| TokenizeError::Load {
            path: path.display().to_string(),
            message,
        };
        let mut inner = Tokenizer::from_file(path).map_err(|e| load_err(e.to_string()))?;
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| load_err(e.to_string()))?;
        Ok(Self {
            inner,
            max_len,
            offsets: false,
            prefix: String::new(),
            prefix_chars: 0,
        })
    }

    /// Puts `prefix` before every text, as the model was trained to read it
    /// (E5 models expect `query: `). Offsets stay in characters of the text
    /// itself: tokens of the prefix get `(0, 0)`, like special tokens.
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self.prefix_chars = prefix.chars().count() as u32;
        self
    }

    /// Also returns each token's character span (comment analysis needs
    /// them; plain embedding skips the work).
    pub fn with_offsets(mut self, on: bool) -> Self {
        self.offsets = on;
        self
    }

    /// Longest sequence the model reads.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Tokenizes one text. Very long texts are cut before tokenizing (a
    /// prefix of 32 bytes per token is far more than the model reads), so a
    /// 100 kB comment costs no more than a long one.
    pub fn encode(&self, text: &str) -> Result<Tokens, TokenizeError> {
        let limit = self.max_len * 32;
        if text.len() > limit {
            let mut cut = limit;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let t = self.encode_raw(&text[..cut])?;
            if t.ids.len() >= self.max_len {
                return Ok(Tokens {
                    truncated: true,
                    ..t
                });
            }
        }
        self.encode_raw(text)
    }

    fn encode_raw(&self, text: &str) -> Result<Tokens, TokenizeError> {
        let prefixed;
        let text = if self.prefix.is_empty() {
            text
        } else {
            prefixed = format!("{}{text}", self.prefix);
            prefixed.as_str()
        };
        let enc = if self.offsets {
            self.inner.encode_char_offsets(text, true)
        } else {
            self.inner.encode_fast(text, true)
        }
        .map_err(|e| TokenizeError::Encode(e.to_string()))?;
        let offsets = if self.offsets {
            let p = self.prefix_chars;
            enc.get_offsets()
                .iter()
                .map(|&(a, b)| {
                    let (a, b) = (a as u32, b as u32);
                    if p == 0 {
                        (a, b)
                    } else if b <= p {
                        (0, 0)
                    } else {
                        (a.max(p) - p, b - p)
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Tokens {
            truncated: !enc.get_overflowing().is_empty(),
            ids: enc.get_ids().to_vec(),
            offsets,
        })
    }

    /// Tokenizes texts in parallel (rayon), keeping their order.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Tokens>, TokenizeError> {
        texts.par_iter().map(|t| self.encode(t)).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The model's tokenizer if `models/setup.sh` has run, else `None` (the
    /// model-backed tests in tests/ require it; unit tests stay runnable).
    pub(crate) fn tokenizer() -> Option<TextTokenizer> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".cache/models/all-MiniLM-L6-v2/tokenizer.json");
        p.is_file()
            .then(|| TextTokenizer::from_file(&p, 256).unwrap())
    }

    #[test]
    fn bad_text_never_panics_and_long_text_is_flagged() {
        let Some(t) = tokenizer() else { return };
        let long = "word ".repeat(20_000);
        let cases = [
            "",
            "   ",
            "😀😀😀",
            "\u{0}\u{1}\u{7}control",
            "Привет mixed 文字 text",
            long.as_str(),
        ];
        for c in cases {
            let r = t.encode(c).unwrap();
            assert!(
                r.ids.len() >= 2 && r.ids.len() <= 256,
                "{c:.20}: {} ids",
                r.ids.len()
            );
        }
        assert!(t.encode(&long).unwrap().truncated);
        assert!(!t.encode("short").unwrap().truncated);
        // A long run of characters that make no tokens is not wrongly cut.
        let sparse = format!("{} real words at the end", " ".repeat(20_000));
        let r = t.encode(&sparse).unwrap();
        assert!(!r.truncated && r.ids.len() > 4);
    }
}
