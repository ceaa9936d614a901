//! The known text the samples carry.
//!
//! Everything is plain ASCII study-notes prose so OCR accuracy can be scored by character edit
//! distance. The wording avoids glyph sequences that even a perfect reader may confuse in DejaVu
//! Sans ("rn"/"m", "cl"/"d", "vv"/"w", capital I/lower-case l/one, capital O/zero); a test
//! enforces it.

/// The clean sample: a paragraph on photosynthesis.
pub(crate) const PHOTOSYNTHESIS: &str = "Photosynthesis converts light energy into chemical energy \
stored in glucose. This happens in the chloroplasts of plant cells, where chlorophyll absorbs mostly \
red and blue light. Water is split to release oxygen, and carbon dioxide is fixed into sugars during \
the dark reactions. Mitochondria then break these sugars down to make ATP, the energy currency of \
the cell.";

/// The small-text sample: a paragraph on cellular respiration.
pub(crate) const MITOCHONDRIA: &str = "Mitochondria release energy from food through aerobic \
respiration. Pyruvate from glycolysis enters the matrix, where the citric acid pathway strips \
electrons from it. The electron transport chain then pumps protons across the inner membrane, and \
ATP synthase uses that gradient to make ATP. The final electron acceptor is oxygen, which forms \
water.";

/// The low-contrast sample: a paragraph on enzymes.
pub(crate) const ENZYMES: &str = "Enzymes are proteins that speed up chemical reactions without \
being used up. Each enzyme has an active site whose shape fits one substrate, like a key in a lock. \
High temperatures change that shape and the enzyme stops working; this is called denaturation. Most \
human enzymes work best near body temperature and a neutral pH.";

/// One topic per PDF page (title, body); pages past the end wrap around, told apart by number.
const TOPICS: [(&str, &str); 5] = [
    (
        "Plate tectonics",
        "The outer shell of the Earth is broken into large plates that float on the hot mantle \
below. Where two plates move apart, magma rises and new crust forms along a ridge. Where they \
collide, one plate can sink beneath the other, building deep trenches, volcanoes and mountain \
ranges.",
    ),
    (
        "Water on the move",
        "Water moves between the oceans, the air and the land. Heat from the Sun evaporates it; \
the vapour rises, cools and condenses into tiny droplets high in the sky. Rain and snow bring it \
back to the ground, where rivers carry it to the sea again.",
    ),
    (
        "Supply and demand",
        "When the price of a good rises, buyers usually want less of it, while sellers want to \
offer more. The market settles at the price where both amounts match. A sudden drop in supply, \
such as a poor harvest, pushes that price up until demand falls to meet it.",
    ),
    (
        "Laws of motion",
        "An object stays at rest or keeps moving at a steady speed unless a net force acts on it. \
The force needed to change its motion equals its mass times its acceleration. Every action has an \
equal and opposite reaction, which is why a rocket is pushed forward by the gas it throws back.",
    ),
    (
        "DNA replication",
        "Before a cell divides, it copies its DNA. The double helix unwinds, and each strand \
serves as a template for a new partner strand. Bases pair in a fixed way: adenine with thymine \
and guanine with cytosine, so each copy matches the parent molecule.",
    ),
];

/// The heading and body paragraph of PDF page `page` (1-based).
pub(crate) fn pdf_page(page: usize) -> [String; 2] {
    let (title, body) = TOPICS[(page - 1) % TOPICS.len()];
    [format!("Page {page}: {title}"), body.to_owned()]
}

/// Words for the benchmark images.
const VOCABULARY: [&str; 64] = [
    "atom",
    "basalt",
    "canyon",
    "delta",
    "enzyme",
    "fossil",
    "glacier",
    "habitat",
    "isotope",
    "jungle",
    "kinetic",
    "lava",
    "magnet",
    "nectar",
    "orbit",
    "pollen",
    "quartz",
    "river",
    "sodium",
    "tundra",
    "uranium",
    "vector",
    "wavelength",
    "xylem",
    "yeast",
    "zinc",
    "acid",
    "biome",
    "carbon",
    "dune",
    "energy",
    "fungus",
    "genome",
    "helium",
    "iron",
    "jade",
    "kelp",
    "lens",
    "mineral",
    "neuron",
    "osmosis",
    "prism",
    "quasar",
    "reef",
    "spore",
    "tide",
    "valve",
    "wetland",
    "algae",
    "bacteria",
    "comet",
    "density",
    "echo",
    "fault",
    "gravity",
    "hydrogen",
    "insect",
    "joule",
    "larva",
    "meteor",
    "nitrogen",
    "ozone",
    "plasma",
    "photon",
];

/// Longest benchmark line, in characters; keeps three lines inside a ~1000 px wide image.
const BENCH_LINE_CHARS: usize = 40;

/// Three lines of vocabulary words for benchmark image `index`, the same on every run.
pub(crate) fn bench_lines(index: usize) -> [String; 3] {
    // Seeding the generator with the index makes each image reproducible on its own.
    let mut rng = SplitMix64(index as u64);
    std::array::from_fn(|_| {
        let mut line = String::new();
        loop {
            let word = VOCABULARY[(rng.next() % VOCABULARY.len() as u64) as usize];
            if !line.is_empty() && line.len() + 1 + word.len() > BENCH_LINE_CHARS {
                break line;
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    })
}

/// SplitMix64 (Steele, Lea and Flood): tiny, well mixed, and fixed forever, unlike a library
/// generator whose output may change between versions. It picks the benchmark words and the
/// sensor noise of the photographed pages.
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    #[allow(clippy::cast_precision_loss)]
    fn uniform(&mut self) -> f32 {
        ((self.next() >> 40) as f32 + 1.0) / (1_u64 << 24) as f32
    }

    /// Standard normal (Box–Muller).
    pub(crate) fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_ascii_and_free_of_confusable_glyphs() {
        let mut texts = vec![PHOTOSYNTHESIS, MITOCHONDRIA, ENZYMES];
        texts.extend(TOPICS.iter().flat_map(|(title, body)| [*title, *body]));
        texts.extend(VOCABULARY);
        for text in texts {
            assert!(
                text.chars()
                    .all(|c| c.is_ascii_alphanumeric() || " .,;:-".contains(c)),
                "{text}"
            );
            for bad in ["rn", "cl", "vv", "I", "O", "0", "1"] {
                assert!(!text.contains(bad), "{text:?} contains {bad:?}");
            }
        }
    }

    #[test]
    fn pdf_pages_are_numbered_and_cycle_topics() {
        assert_eq!(pdf_page(1)[0], "Page 1: Plate tectonics");
        assert_eq!(pdf_page(7)[0], "Page 7: Water on the move");
        assert_eq!(pdf_page(2)[1], pdf_page(7)[1]);
    }

    #[test]
    fn bench_lines_are_deterministic_and_bounded() {
        assert_eq!(bench_lines(7), bench_lines(7));
        assert_ne!(bench_lines(7), bench_lines(8));
        for index in 0..50 {
            for line in bench_lines(index) {
                assert!(line.len() <= BENCH_LINE_CHARS, "{line}");
                assert!(line.split(' ').count() >= 3, "{line}");
            }
        }
    }
}
