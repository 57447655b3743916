//! Model manifests (`models/<name>.toml`) and the checked files they name.
//!
//! A manifest pins where a model comes from and the sha256 of every file
//! verbatim reads. [`ModelFiles::open`] verifies them all at start, so a
//! missing or corrupt file is one clear error naming the fix, never a
//! half-loaded model.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{NlpConfig, Precision};

/// The command that fetches and builds model files.
pub const SETUP_FIX: &str =
    "run `bash models/setup.sh` (fetches the pinned model and builds the ONNX files)";

/// Errors finding or checking model files.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The manifest could not be read or parsed.
    #[error("model manifest {path}: {message}. Fix: check nlp.model and nlp.models_dir (manifests live in models/)")]
    Manifest {
        /// The manifest path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The model folder does not exist.
    #[error("model folder {path} does not exist. Fix: {SETUP_FIX}, or point nlp.cache_dir at the folder holding {model}/")]
    MissingDir {
        /// The folder.
        path: PathBuf,
        /// Model name.
        model: String,
    },
    /// A file the manifest names is missing.
    #[error("model file {path} is missing. Fix: {SETUP_FIX}")]
    MissingFile {
        /// The file.
        path: PathBuf,
    },
    /// A file's contents do not match the manifest.
    #[error("model file {path} is corrupt: sha256 {actual}, manifest says {expected}. Fix: delete it and {SETUP_FIX}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// sha256 in the manifest.
        expected: String,
        /// sha256 on disk.
        actual: String,
    },
    /// Reading a file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// `[source]` of a manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSource {
    /// Where it comes from (`pypi-wheel`).
    pub kind: String,
    /// Package name.
    pub package: String,
    /// Pinned version.
    pub version: String,
    /// sha256 of the package file.
    pub sha256: String,
    /// Folder inside the package holding the model files.
    pub path_in_wheel: String,
}

/// A generated file and its expected hash.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratedFile {
    /// File name inside the model folder.
    pub file: String,
    /// Expected sha256.
    pub sha256: String,
}

/// `[onnx]`: the files `models/build_onnx.py` makes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxFiles {
    /// Full-precision graph.
    pub fp32: GeneratedFile,
    /// Dynamically quantized graph.
    pub int8: GeneratedFile,
}

/// A model manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    /// Model name (also its folder name in the cache).
    pub name: String,
    /// One line about the model.
    pub description: String,
    /// Licence of the weights.
    pub licence: String,
    /// Size of a sentence vector.
    pub embedding_dim: usize,
    /// Longest input in tokens; longer texts are truncated and flagged.
    pub max_seq_len: usize,
    /// Pooling of token vectors (`mean`).
    pub pooling: String,
    /// Text put before every input, as the model was trained (E5 models:
    /// `query: `); empty for none.
    #[serde(default)]
    pub prefix: String,
    /// Whether sentence vectors are L2-normalised.
    pub normalize: bool,
    /// ISO 639-1 codes of the languages the model reads.
    pub languages: Vec<String>,
    /// Where the files come from.
    pub source: ModelSource,
    /// Where `tokenizer.json` comes from, when another package ships it.
    #[serde(default)]
    pub tokenizer_source: Option<ModelSource>,
    /// sha256 of each source file, by path inside the model folder.
    pub files: BTreeMap<String, String>,
    /// Generated ONNX graphs.
    pub onnx: OnnxFiles,
    /// Similarity thresholds tuned for this model's cosines.
    #[serde(default)]
    pub calibration: crate::config::Calibration,
    /// A linear map the sentence vectors go through before anything compares
    /// comments (see [`super::projection`]).
    #[serde(default)]
    pub theme_projection: Option<ProjectionFile>,
}

/// `[theme_projection]` of a manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionFile {
    /// safetensors file, relative to the folder of manifests.
    pub file: String,
    /// Expected sha256.
    pub sha256: String,
}

impl ModelManifest {
    /// Reads `<models_dir>/<name>.toml`.
    pub fn load(models_dir: &Path, name: &str) -> Result<Self, ModelError> {
        let path = models_dir.join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::Manifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let m: Self = toml::from_str(&text).map_err(|e| ModelError::Manifest {
            path: path.clone(),
            message: e.to_string().trim_end().to_string(),
        })?;
        if m.pooling != "mean" {
            return Err(ModelError::Manifest {
                path,
                message: format!(
                    "pooling {:?} is not supported (models/build_onnx.py and the torch backend pool by the mean)",
                    m.pooling
                ),
            });
        }
        Ok(m)
    }
}

/// The verified files of one model.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// The manifest.
    pub manifest: ModelManifest,
    /// Folder holding the files.
    pub dir: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// `model.safetensors`.
    pub safetensors: PathBuf,
}

/// sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut f = std::fs::File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            ModelError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn verify(path: &Path, expected: &str) -> Result<(), ModelError> {
    let actual = sha256_file(path)?;
    if actual != expected {
        return Err(ModelError::Corrupt {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

impl ModelFiles {
    /// Loads the manifest and verifies every source file.
    pub fn open(cfg: &NlpConfig) -> Result<Self, ModelError> {
        let manifest = ModelManifest::load(&cfg.models_dir, &cfg.model)?;
        let dir = cfg.cache_dir.join(&manifest.name);
        if !dir.is_dir() {
            return Err(ModelError::MissingDir {
                path: dir,
                model: manifest.name.clone(),
            });
        }
        for (file, sha) in &manifest.files {
            verify(&dir.join(file), sha)?;
        }
        Ok(Self {
            tokenizer: dir.join("tokenizer.json"),
            safetensors: dir.join("model.safetensors"),
            dir,
            manifest,
        })
    }

    /// The verified ONNX graph for a precision (or the configured override,
    /// which is the user's own file and is not hash-checked).
    pub fn onnx(
        &self,
        precision: Precision,
        override_file: Option<&Path>,
    ) -> Result<PathBuf, ModelError> {
        if let Some(p) = override_file {
            if !p.is_file() {
                return Err(ModelError::MissingFile {
                    path: p.to_path_buf(),
                });
            }
            return Ok(p.to_path_buf());
        }
        let g = match precision {
            Precision::Int8 => &self.manifest.onnx.int8,
            Precision::Fp32 => &self.manifest.onnx.fp32,
        };
        let path = self.dir.join(&g.file);
        verify(&path, &g.sha256)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
    }

    #[test]
    fn shipped_manifest_parses() {
        let m = ModelManifest::load(&manifest_dir(), "all-MiniLM-L6-v2").unwrap();
        assert_eq!(m.embedding_dim, 384);
        assert!(m.files.contains_key("tokenizer.json"));
    }

    #[test]
    fn calibration_fills_only_what_the_pipeline_leaves_unset() {
        let mini = ModelManifest::load(&manifest_dir(), "all-MiniLM-L6-v2").unwrap();
        let e5 = ModelManifest::load(&manifest_dir(), "multilingual-e5-small").unwrap();
        // MiniLM's numbers are the built-in defaults; e5 brings its own.
        assert_eq!(mini.calibration, crate::config::Calibration::default());
        let unset = crate::config::ThemesConfig::default();
        assert_eq!(unset.calibrated(&mini.calibration).join_similarity(), 0.8);
        let cal = e5.calibration.clone();
        let t = unset.calibrated(&cal);
        assert_eq!(t.join_similarity, cal.join_similarity);
        assert_eq!(t.cluster_distance, cal.cluster_distance);
        assert_eq!(t.refit_distance, cal.refit_distance);
        // Themes per mention take their own cut where the manifest has one.
        let per_mention = crate::config::ThemesConfig {
            unit: crate::config::ThemeUnit::Mention,
            ..Default::default()
        };
        assert_eq!(
            per_mention.calibrated(&cal).cluster_distance,
            cal.mention_cluster_distance
        );
        assert!(cal.mention_cluster_distance > cal.cluster_distance);
        assert_eq!(
            per_mention.calibrated(&mini.calibration).cluster_distance(),
            unset.cluster_distance()
        );
        // e5's comment vectors go through its projection into MiniLM's
        // space, so its theme thresholds sit near MiniLM's; its target
        // threshold reads raw vectors and sits far above.
        assert!((0.7..0.9).contains(&t.join_similarity()), "{t:?}");
        assert!(
            cal.target_min_similarity.is_some_and(|x| x > 0.8),
            "{cal:?}"
        );
        let set = crate::config::ThemesConfig {
            join_similarity: Some(0.5),
            ..Default::default()
        };
        let t = set.calibrated(&cal);
        assert_eq!(t.join_similarity(), 0.5);
        assert_eq!(t.cluster_distance, cal.cluster_distance);
        let target: crate::config::TargetExamples = toml::from_str("examples = ['x']").unwrap();
        assert_eq!(target.min_similarity_for(&mini.calibration), 0.45);
        assert_eq!(
            Some(target.min_similarity_for(&cal)),
            cal.target_min_similarity
        );
        let own: crate::config::TargetExamples =
            toml::from_str("examples = ['x']\nmin_similarity = 0.3").unwrap();
        assert_eq!(own.min_similarity_for(&cal), 0.3);
    }

    #[test]
    fn missing_dir_names_the_fix() {
        let cfg = NlpConfig {
            models_dir: manifest_dir(),
            cache_dir: PathBuf::from("/nonexistent"),
            ..NlpConfig::default()
        };
        let e = ModelFiles::open(&cfg).unwrap_err().to_string();
        assert!(e.contains("models/setup.sh"), "{e}");
    }

    #[test]
    fn missing_and_corrupt_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mdir = dir.path().join("all-MiniLM-L6-v2");
        std::fs::create_dir_all(mdir.join("1_Pooling")).unwrap();
        let cfg = NlpConfig {
            model: "all-MiniLM-L6-v2".into(),
            models_dir: manifest_dir(),
            cache_dir: dir.path().to_path_buf(),
            ..NlpConfig::default()
        };
        let e = ModelFiles::open(&cfg).unwrap_err();
        assert!(matches!(e, ModelError::MissingFile { .. }), "{e}");
        for f in [
            "1_Pooling/config.json",
            "config.json",
            "model.safetensors",
            "tokenizer.json",
        ] {
            std::fs::write(mdir.join(f), b"not the real file").unwrap();
        }
        let e = ModelFiles::open(&cfg).unwrap_err();
        assert!(matches!(e, ModelError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("delete it"), "{e}");
    }

    #[test]
    fn bad_model_name_names_the_manifest() {
        let cfg = NlpConfig {
            model: "no-such-model".into(),
            models_dir: manifest_dir(),
            ..NlpConfig::default()
        };
        let e = ModelFiles::open(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("no-such-model.toml") && e.contains("nlp.model"),
            "{e}"
        );
    }
}
