//! Single-precision arithmetic the way llama.cpp's CPU backend does it in its AVX2 build: the order
//! in which its vector kernels add products (8 lanes, summed pairwise at the end), its
//! approximation of `exp` (in softmax and SiLU), and fused multiply-adds.
//!
//! Why it matters: both sides round activations to 8 bits before every matrix product, so a
//! difference in the last bit of one value can move a rounding by a whole step, and such steps
//! add up over the layers until two near-tied tokens swap. Greedy parity with llama.cpp on the
//! same file needs the same bits, not only the same formulas.
//!
//! `FMA` is true in code compiled for AVX2 and FMA, which llama.cpp's build uses; the portable
//! forms round the product separately and so differ in the last bit.

/// Whether this CPU runs the builds of our kernels compiled for AVX2, FMA and F16C (x86-64-v3,
/// as llama.cpp is built for the comparisons).
#[cfg(target_arch = "x86_64")]
pub fn has_avx2_fma_f16c() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
}

/// `$avx2`, a call of a function compiled for AVX2, FMA and F16C (or some of them), where the CPU
/// has all three; else `$portable`, the same computation without them.
macro_rules! fastest {
    ($avx2:expr, $portable:expr $(,)?) => {{
        #[cfg(target_arch = "x86_64")]
        let result = if $crate::elementwise::has_avx2_fma_f16c() {
            // SAFETY: the CPU was just found to have every feature the function is compiled for.
            #[allow(unsafe_code)]
            unsafe {
                $avx2
            }
        } else {
            $portable
        };
        #[cfg(not(target_arch = "x86_64"))]
        let result = $portable;
        result
    }};
}
pub(crate) use fastest;

/// Lanes of the vector sums.
pub const LANES: usize = 8;

/// `a × b + c`, fused where `FMA` says the code runs on a CPU with it.
#[inline(always)]
pub fn multiply_add<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// The lanes summed in the order of an AVX horizontal sum: the two halves first, then pairwise.
#[inline(always)]
pub fn lanes_total(l: &[f32; LANES]) -> f32 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

/// Σ a·b with term `i` in lane `i mod 8`, then [`lanes_total`]: llama.cpp's matrix
/// multiplication of half-precision values (a prompt's attention).
#[inline(always)]
pub fn dot_in_lanes<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0_f32; LANES];
    for (a, b) in a.chunks(LANES).zip(b.chunks(LANES)) {
        for ((lane, a), b) in lanes.iter_mut().zip(a).zip(b) {
            *lane = multiply_add::<FMA>(*a, *b, *lane);
        }
    }
    lanes_total(&lanes)
}

/// Terms of llama.cpp's vector dot product of half-precision values: 4 registers of 8 lanes.
pub const STEP: usize = 4 * LANES;

/// The four registers of a [`dot_in_steps`] sum added together, as llama.cpp reduces them:
/// register 0 with 2 and 1 with 3, those two, then the halves and two horizontal adds.
#[inline(always)]
pub fn steps_total(registers: &[[f32; LANES]; 4]) -> f32 {
    let [r0, r1, r2, r3] = registers;
    let lane = |l: usize| (r0[l] + r2[l]) + (r1[l] + r3[l]);
    let t = [
        lane(0) + lane(4),
        lane(1) + lane(5),
        lane(2) + lane(6),
        lane(3) + lane(7),
    ];
    (t[0] + t[1]) + (t[2] + t[3])
}

/// Σ a·b with term `i` in register `(i / 8) mod 4`, lane `i mod 8`, then [`steps_total`]; terms
/// past the last whole step of 32 are added in double precision: llama.cpp's vector dot product
/// of half-precision values (one token's attention).
#[inline(always)]
#[allow(clippy::cast_possible_truncation)]
pub fn dot_in_steps<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let whole = a.len().min(b.len()) / STEP * STEP;
    let mut registers = [[0.0_f32; LANES]; 4];
    for (a, b) in a[..whole]
        .chunks_exact(STEP)
        .zip(b[..whole].chunks_exact(STEP))
    {
        for (register, (a, b)) in registers
            .iter_mut()
            .zip(a.chunks_exact(LANES).zip(b.chunks_exact(LANES)))
        {
            for ((lane, a), b) in register.iter_mut().zip(a).zip(b) {
                *lane = multiply_add::<FMA>(*a, *b, *lane);
            }
        }
    }
    let mut total = f64::from(steps_total(&registers));
    for (a, b) in a[whole..].iter().zip(&b[whole..]) {
        total += f64::from(a * b);
    }
    total as f32
}

/// `e^x` as llama.cpp's vector kernels compute it (a range reduction to `2^n × e^b` and a
/// polynomial in `b`, from Arm's optimized routines; within 1.5 ulp of `exp`). Overflows to
/// infinity above 88.38 and underflows to 0 below −103.97.
#[inline(always)]
pub fn exp<const FMA: bool>(x: f32) -> f32 {
    let shift = f32::from_bits(0x4B40_0000); // 1.5 × 2^23: adding it rounds to an integer.
    let z = multiply_add::<FMA>(x, f32::from_bits(0x3FB8_AA3B), shift); // x × log2(e)
    let n = z - shift;
    // b = x − n × ln 2, with ln 2 in two parts.
    let b = multiply_add::<FMA>(
        -n,
        f32::from_bits(0x35BF_BE8E),
        multiply_add::<FMA>(-n, f32::from_bits(0x3F31_7200), x),
    );
    let e = z.to_bits() << 23;
    let k = f32::from_bits(e.wrapping_add(1.0_f32.to_bits())); // 2^n
    let u = b * b;
    let j = multiply_add::<FMA>(
        multiply_add::<FMA>(
            multiply_add::<FMA>(f32::from_bits(0x3C07_2010), b, f32::from_bits(0x3D2B_9F17)),
            u,
            multiply_add::<FMA>(f32::from_bits(0x3E2A_AF33), b, f32::from_bits(0x3EFF_FEDB)),
        ),
        u,
        f32::from_bits(0x3F7F_FFF6) * b,
    );
    if n.abs() <= 126.0 {
        return multiply_add::<FMA>(j, k, k);
    }
    // 2^n itself would overflow or underflow: scale in two steps.
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = f32::from_bits(g.wrapping_add(0x7F00_0000));
    if n.abs() > 192.0 {
        return s1 * s1;
    }
    let s2 = f32::from_bits(e.wrapping_sub(g));
    multiply_add::<FMA>(s2, j, s2) * s1
}

/// SiLU, `x / (1 + e^−x)`, with [`exp`].
#[inline(always)]
pub fn silu<const FMA: bool>(x: f32) -> f32 {
    x / (1.0 + exp::<FMA>(0.0 - x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulps_of_the_library_exp_and_saturates() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.043;
            for approximate in [exp::<true>(x), exp::<false>(x)] {
                let exact = x.exp();
                let ulp = (exact.to_bits() as i64 - approximate.to_bits() as i64).abs();
                assert!(ulp <= 2, "exp({x}) = {approximate}, not {exact}");
            }
        }
        assert_eq!(exp::<true>(-200.0), 0.0);
        assert_eq!(exp::<true>(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp::<true>(100.0), f32::INFINITY);
        assert_eq!(exp::<true>(0.0), 1.0);
    }

    #[test]
    fn silu_is_x_times_the_logistic_function() {
        for x in [-10.0_f32, -1.0, 0.0, 0.5, 3.0] {
            let expected = x / (1.0 + (-x).exp());
            assert!((silu::<true>(x) - expected).abs() <= 1e-6 * expected.abs().max(1.0));
        }
    }

    #[test]
    fn sums_in_lanes_and_steps_add_every_term() {
        let a: Vec<f32> = (0..70).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..70).map(|i| 1.0 - i as f32 * 0.01).collect();
        let exact: f64 = a.iter().zip(&b).map(|(a, b)| f64::from(a * b)).sum();
        for sum in [
            dot_in_lanes::<true>(&a, &b),
            dot_in_steps::<true>(&a, &b),
            dot_in_steps::<false>(&a[..64], &b[..64]) + dot_in_lanes::<false>(&a[64..], &b[64..]),
        ] {
            assert!((f64::from(sum) - exact).abs() < 1e-3, "{sum} vs {exact}");
        }
    }
}
