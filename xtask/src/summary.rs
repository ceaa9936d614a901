//! Adding up the `test result:` lines that libtest prints once per test binary.

/// Counts from `test result:` lines, summed over suites.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
    pub measured: u64,
    pub filtered_out: u64,
    pub suites: u64,
}

impl Totals {
    /// Adds `line` if it is a `test result:` line, as in
    /// `test result: ok. 36 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 2.63s`.
    pub fn add_line(&mut self, line: &str) {
        let Some(counts) = line.trim_end().strip_prefix("test result: ") else {
            return;
        };
        // Skip "ok. " / "FAILED. ": a failed count of zero means ok anyway.
        let counts = counts.split_once(". ").map_or(counts, |(_, rest)| rest);
        self.suites += 1;
        for part in counts.split(';') {
            let Some((number, label)) = part.trim().split_once(' ') else {
                continue;
            };
            let Ok(number) = number.parse::<u64>() else {
                continue;
            };
            match label {
                "passed" => self.passed += number,
                "failed" => self.failed += number,
                "ignored" => self.ignored += number,
                "measured" => self.measured += number,
                "filtered out" => self.filtered_out += number,
                _ => {}
            }
        }
    }

    /// Whether the run succeeded: cargo exited successfully and no test failed.
    pub fn ok(&self, cargo_succeeded: bool) -> bool {
        cargo_succeeded && self.failed == 0
    }

    /// One line in libtest's style, with the number of suites where libtest has the time.
    pub fn summary(&self, cargo_succeeded: bool) -> String {
        let status = if self.ok(cargo_succeeded) {
            "ok"
        } else {
            "FAILED"
        };
        let suites = if self.suites == 1 { "suite" } else { "suites" };
        format!(
            "test result: {status}. {} passed; {} failed; {} ignored; {} measured; {} filtered out; {} {suites}",
            self.passed, self.failed, self.ignored, self.measured, self.filtered_out, self.suites
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Totals;

    #[test]
    fn sums_every_result_line_and_ignores_the_rest() {
        let mut totals = Totals::default();
        for line in [
            "running 36 tests",
            "test auth::tests::hashes ... ok",
            "test result: ok. 36 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 2.63s\n",
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
            "test result: FAILED. 10 passed; 3 failed; 0 ignored; 1 measured; 5 filtered out; finished in 12.01s",
        ] {
            totals.add_line(line);
        }
        assert_eq!(
            totals,
            Totals {
                passed: 46,
                failed: 3,
                ignored: 2,
                measured: 1,
                filtered_out: 5,
                suites: 3,
            }
        );
        assert_eq!(
            totals.summary(true),
            "test result: FAILED. 46 passed; 3 failed; 2 ignored; 1 measured; 5 filtered out; 3 suites"
        );
    }

    #[test]
    fn ok_needs_cargo_to_succeed_too() {
        let mut totals = Totals::default();
        totals.add_line(
            "test result: ok. 4 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s",
        );
        assert_eq!(
            totals.summary(true),
            "test result: ok. 4 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; 1 suite"
        );
        assert!(!totals.ok(false));
        assert!(
            Totals::default()
                .summary(false)
                .starts_with("test result: FAILED. 0 passed;")
        );
    }
}
