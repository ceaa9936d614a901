//! Text generation: the prompt's tokens through the model, then one token at a time picked from
//! the logits (greedy, or temperature and top-p from a seed) until a stop token, the token limit
//! or the caller says stop. A constraint, when given, masks the logits before each pick.

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::{
    constraint::{ConstraintError, JsonConstraint},
    model::{Model, ModelError, Session},
};

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Constraint(#[from] ConstraintError),
}

/// How the next token is picked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0 picks the likeliest token (greedy); higher flattens the distribution.
    pub temperature: f32,
    /// Only the likeliest tokens whose probabilities add up to this are candidates (1 = all).
    pub top_p: f32,
    pub seed: u64,
}

impl Sampling {
    pub const GREEDY: Self = Self {
        temperature: 0.0,
        top_p: 1.0,
        seed: 0,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// A stop token came (not part of the output), or the constrained document is complete.
    Stop,
    /// `max_tokens` were generated.
    Length,
    /// The caller stopped it (a client went away).
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub tokens: Vec<u32>,
    pub prompt_tokens: usize,
    pub finish: Finish,
}

/// Generates after `prompt` in `session`, whose cache must hold the prompt and `max_tokens`. The
/// part of the prompt the session already holds (the same tokens from the start) is not computed
/// again: a chat's fixed instructions and examples are read once for many requests. `on_token`
/// sees each token as it is picked and returns `false` to stop. With a `constraint`, only tokens
/// it allows are picked, and the output ends when its document does.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    model: &Model,
    session: &mut Session,
    prompt: &[u32],
    max_tokens: usize,
    stop: &[u32],
    sampling: Sampling,
    mut constraint: Option<&mut JsonConstraint>,
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<Generated, GenerateError> {
    let context = prompt.len() + max_tokens;
    if context > session.capacity() {
        return Err(ModelError::ContextFull(session.capacity()).into());
    }
    let reused = reusable(
        common_prefix(session.tokens(), prompt),
        session.prompted(),
        prompt.len(),
    );
    session.rewind(reused);
    let mut rng = StdRng::seed_from_u64(sampling.seed);
    let mut logits = model.prefill(session, &prompt[reused..])?;
    let mut tokens = Vec::new();
    let finish = loop {
        if tokens.len() == max_tokens {
            break Finish::Length;
        }
        if let Some(constraint) = constraint.as_deref_mut() {
            constraint.mask(&mut logits, stop)?;
        }
        let token = pick(&logits, sampling, &mut rng);
        if stop.contains(&token) {
            break Finish::Stop;
        }
        if let Some(constraint) = constraint.as_deref_mut() {
            constraint.accept(token)?;
        }
        tokens.push(token);
        if !on_token(token) {
            break Finish::Cancelled;
        }
        if constraint
            .as_deref()
            .is_some_and(JsonConstraint::is_finished)
        {
            break Finish::Stop;
        }
        if tokens.len() < max_tokens {
            logits = model.step(session, token)?;
        }
    };
    Ok(Generated {
        tokens,
        prompt_tokens: prompt.len(),
        finish,
    })
}

/// How many cached tokens a prompt can start from, of the `shared` it has in common with the
/// session, so that the answer is the one a fresh session gives (the model computes llama.cpp's
/// numbers, whose order of sums depends on how the tokens are fed): only tokens fed as a prompt
/// (`prompted`), at least 2 left to feed as a prompt again (the last one's logits start the
/// answer), and a multiple of 4, as llama.cpp's repacked Q4_K kernel takes a prompt's tokens four
/// at a time from its start.
fn reusable(shared: usize, prompted: usize, prompt: usize) -> usize {
    let reusable = shared.min(prompted).min(prompt.saturating_sub(2));
    reusable - reusable % 4
}

/// How many tokens `a` and `b` share from the start.
fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The likeliest token and its logit: the first of equals, token 0 if every logit is −∞.
pub fn likeliest(logits: &[f32]) -> (u32, f32) {
    let (index, logit) =
        logits
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (index, &logit)| {
                if logit > best.1 { (index, logit) } else { best }
            });
    (u32::try_from(index).unwrap_or(0), logit)
}

/// The next token: the likeliest at temperature 0, else drawn from the softmax of
/// `logits / temperature` cut to the top-p nucleus.
pub fn pick(logits: &[f32], sampling: Sampling, rng: &mut impl Rng) -> u32 {
    let likeliest = likeliest(logits);
    if sampling.temperature <= 0.0 || likeliest.1 == f32::NEG_INFINITY {
        return likeliest.0;
    }
    // Masked tokens (minus infinity) weigh nothing and are never candidates.
    let mut candidates: Vec<(usize, f32)> = logits
        .iter()
        .enumerate()
        .filter_map(|(index, &logit)| {
            let weight = ((logit - likeliest.1) / sampling.temperature).exp();
            (weight > 0.0).then_some((index, weight))
        })
        .collect();
    if sampling.top_p < 1.0 {
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total: f32 = candidates.iter().map(|(_, weight)| weight).sum();
        let mut kept = 0.0;
        let nucleus = candidates
            .iter()
            .position(|(_, weight)| {
                kept += weight / total;
                kept >= sampling.top_p
            })
            .map_or(candidates.len(), |last| last + 1);
        candidates.truncate(nucleus);
    }
    let mass: f32 = candidates.iter().map(|(_, weight)| weight).sum();
    let mut draw = rng.random::<f32>() * mass;
    for (index, weight) in &candidates {
        draw -= weight;
        if draw <= 0.0 {
            return u32::try_from(*index).unwrap_or(0);
        }
    }
    candidates
        .last()
        .map_or(0, |(index, _)| u32::try_from(*index).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_start_is_reused_only_as_a_fresh_prompt_would_compute_it() {
        // 100 tokens shared and fed as a prompt, a 120-token prompt: all 100.
        assert_eq!(reusable(100, 100, 120), 100);
        // Down to a multiple of 4.
        assert_eq!(reusable(103, 110, 120), 100);
        // Only what was fed as a prompt, not the answer fed token by token after it.
        assert_eq!(reusable(110, 90, 120), 88);
        // The same prompt again: at least two of its tokens are fed anew.
        assert_eq!(reusable(120, 120, 120), 116);
        assert_eq!(reusable(5, 5, 5), 0);
    }

    #[test]
    fn greedy_takes_the_likeliest_and_the_first_of_equals() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(pick(&[0.1, 3.0, 2.0], Sampling::GREEDY, &mut rng), 1);
        assert_eq!(pick(&[5.0, 5.0, 1.0], Sampling::GREEDY, &mut rng), 0);
    }

    #[test]
    fn the_common_prefix_stops_at_the_first_difference() {
        assert_eq!(common_prefix(&[1, 2, 3, 4], &[1, 2, 5]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
        assert_eq!(common_prefix(&[1, 2], &[1, 2, 3]), 2);
    }

    #[test]
    fn masked_tokens_are_never_drawn() {
        let sampling = Sampling {
            temperature: 1.0,
            top_p: 1.0,
            seed: 0,
        };
        let logits = [
            f32::NEG_INFINITY,
            0.0,
            f32::NEG_INFINITY,
            0.5,
            f32::NEG_INFINITY,
        ];
        let mut rng = StdRng::seed_from_u64(11);
        for _ in 0..2000 {
            let token = pick(&logits, sampling, &mut rng);
            assert!(token == 1 || token == 3, "drew masked token {token}");
        }
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // Token 0 holds nearly all the mass: a small top-p never draws another.
        let sampling = Sampling {
            temperature: 1.0,
            top_p: 0.5,
            seed: 0,
        };
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            assert_eq!(pick(&[10.0, 0.0, 0.0, 0.0], sampling, &mut rng), 0);
        }
    }

    #[test]
    fn temperature_draws_follow_the_distribution_and_the_seed() {
        let sampling = Sampling {
            temperature: 1.0,
            top_p: 1.0,
            seed: 0,
        };
        let logits = [0.0, 2.0_f32.ln()]; // probabilities 1/3 and 2/3
        let draws = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..3000)
                .map(|_| pick(&logits, sampling, &mut rng))
                .collect::<Vec<_>>()
        };
        let ones = draws(3).iter().filter(|&&token| token == 1).count();
        assert!((1850..2150).contains(&ones), "{ones} of 3000");
        assert_eq!(draws(3), draws(3));
        assert_ne!(draws(3), draws(4));
    }
}
