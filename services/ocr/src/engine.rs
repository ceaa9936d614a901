//! One Tesseract engine: a libtesseract handle with a language loaded. Loading a language takes a
//! good fraction of a second, so engines live in a pool and switch language only when asked to.

use std::path::{Path, PathBuf};

use image::GrayImage;
use tesseract_rs::{TessPageSegMode, TesseractAPI};

use crate::words::{Word, parse_tsv};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("loading language {language} from {datapath}: {source}")]
    Init {
        language: String,
        datapath: String,
        source: tesseract_rs::TesseractError,
    },
    #[error("recognising the page: {0}")]
    Recognize(#[from] tesseract_rs::TesseractError),
    #[error("the page is too large for Tesseract ({0} pixels wide or high)")]
    TooLarge(u32),
    #[error(transparent)]
    Output(#[from] crate::words::TsvError),
    #[error("{0} panicked")]
    Panicked(String),
}

/// Page segmentation modes that produce text (0 only detects orientation, 2 only finds layout).
pub const PAGE_SEG_MODES: [u8; 12] = [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
pub const DEFAULT_PAGE_SEG_MODE: u8 = 3;

/// How Tesseract separates ink from paper before reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Threshold {
    /// One threshold for the whole page (Otsu's): best on evenly lit pages, noisy or not.
    #[default]
    Global,
    /// A threshold for each neighbourhood of `window_px` pixels (Sauvola's): for noisy pages
    /// under uneven light, where one threshold loses the text in the shadow.
    Local { window_px: u32 },
}

impl Threshold {
    /// The value of Tesseract's `thresholding_method` variable.
    fn tesseract_method(self) -> &'static str {
        match self {
            Self::Global => "0",
            Self::Local { .. } => "2",
        }
    }
}

pub struct Engine {
    api: TesseractAPI,
    datapath: PathBuf,
    language: String,
}

impl Engine {
    pub fn new(datapath: &Path, language: &str) -> Result<Self, EngineError> {
        let api = TesseractAPI::new();
        let mut engine = Self {
            api,
            datapath: datapath.to_owned(),
            language: String::new(),
        };
        engine.load(language)?;
        Ok(engine)
    }

    pub fn language(&self) -> &str {
        &self.language
    }

    /// The languages installed in the engine's tessdata folder (without `osd`, which only finds
    /// orientation).
    pub fn installed_languages(&self) -> Result<Vec<String>, EngineError> {
        let mut languages = self.api.get_available_languages()?;
        languages.retain(|language| language != "osd");
        languages.sort();
        Ok(languages)
    }

    fn load(&mut self, language: &str) -> Result<(), EngineError> {
        self.api
            .init(&self.datapath, language)
            .map_err(|source| EngineError::Init {
                language: language.to_owned(),
                datapath: self.datapath.display().to_string(),
                source,
            })?;
        language.clone_into(&mut self.language);
        Ok(())
    }

    /// Recognises one page in `language` (already validated against the installed ones).
    pub fn recognize(
        &mut self,
        page: &GrayImage,
        threshold: Threshold,
        language: &str,
        page_seg_mode: u8,
        ppi: u32,
    ) -> Result<Vec<Word>, EngineError> {
        if self.language != language {
            self.load(language)?;
        }
        let width = i32::try_from(page.width()).map_err(|_| EngineError::TooLarge(page.width()))?;
        let height =
            i32::try_from(page.height()).map_err(|_| EngineError::TooLarge(page.height()))?;
        self.api
            .set_page_seg_mode(TessPageSegMode::from_int(i32::from(page_seg_mode)))?;
        // Set on every page: the engine keeps variables from one page to the next.
        self.api
            .set_variable("thresholding_method", threshold.tesseract_method())?;
        if let Threshold::Local { window_px } = threshold {
            // Tesseract sizes the window in inches of the page's resolution.
            #[allow(clippy::cast_precision_loss)]
            let inches = f64::from(window_px) / f64::from(ppi.max(1));
            self.api
                .set_variable("thresholding_window_size", &format!("{inches:.4}"))?;
        }
        self.api.set_image(page.as_raw(), width, height, 1, width)?;
        self.api
            .set_source_resolution(i32::try_from(ppi).unwrap_or(300))?;
        self.api.recognize()?;
        let tsv = self.api.get_tsv_text(0)?;
        // Free the page now rather than at the next request.
        self.api.clear()?;
        Ok(parse_tsv(&tsv)?)
    }
}
