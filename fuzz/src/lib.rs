//! Fuzz targets for the parsers that take raw client input: Logto's search syntax, pagination
//! and its `Link` headers, the phone number normaliser, and JWT verification. Each target takes
//! arbitrary bytes, builds an input from them and checks properties that must hold for every
//! input; a violated property panics, as fuzz targets report.
//!
//! `run` drives a target on stable Rust: seeded random inputs and mutations of earlier ones,
//! for a bounded number of cases (`tests/bounded.rs` runs each in CI; `FUZZ_CASES` makes a
//! longer run). There is no coverage feedback, which `cargo fuzz` on nightly would add.

// A fuzz target reports a violated property by panicking, with the input that broke it.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

pub mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Reads structured values off the fuzzer's bytes; past the end every read yields zeros, so
/// every byte string is a valid input.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((first, rest)) => {
                self.data = rest;
                *first
            }
            None => 0,
        }
    }

    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        taken
    }

    pub fn u64(&mut self) -> u64 {
        let mut buffer = [0_u8; 8];
        let taken = self.bytes(8);
        buffer[..taken.len()].copy_from_slice(taken);
        u64::from_le_bytes(buffer)
    }

    /// Text of a length the next byte gives (longer when its high bit is set), lossily UTF-8.
    pub fn text(&mut self) -> String {
        let length = usize::from(self.byte());
        let length = if length >= 0x80 {
            (length - 0x80) * 32
        } else {
            length
        };
        String::from_utf8_lossy(self.bytes(length)).into_owned()
    }

    /// Everything left, lossily UTF-8.
    pub fn rest(&mut self) -> String {
        let all = self.bytes(self.data.len());
        String::from_utf8_lossy(all).into_owned()
    }

    /// One of `words` most of the time, else arbitrary text: inputs near the grammar reach
    /// deeper than random bytes alone.
    pub fn word(&mut self, words: &[&str]) -> String {
        let choice = usize::from(self.byte());
        match words.get(choice % (words.len() + 2)) {
            Some(word) => (*word).to_owned(),
            None => self.text(),
        }
    }

    /// Query pairs: up to 16, keys and values drawn from the vocabularies or arbitrary.
    pub fn pairs(&mut self, keys: &[&str], values: &[&str]) -> Vec<(String, String)> {
        let count = self.byte() % 17;
        (0..count)
            .map(|_| (self.word(keys), self.word(values)))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// What a bounded run did.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub cases: u64,
    pub elapsed: Duration,
}

/// Runs `target` on `cases` inputs drawn from `seed`: random bytes, and mutations (bit flips,
/// byte changes, insertions, deletions, splices) of `seeds` and of a pool of earlier inputs.
/// A panicking case is printed (hex) before the panic carries on.
pub fn run(target: fn(&[u8]), seeds: &[&[u8]], cases: u64, seed: u64) -> Run {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pool: Vec<Vec<u8>> = seeds.iter().map(|s| s.to_vec()).collect();
    let started = Instant::now();
    for _ in 0..cases {
        let input = if pool.is_empty() || rng.random_bool(0.25) {
            let length = rng.random_range(0..512);
            (0..length).map(|_| rng.random()).collect()
        } else {
            let base = &pool[rng.random_range(0..pool.len())];
            let other = &pool[rng.random_range(0..pool.len())];
            mutate(&mut rng, base, other)
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
            eprintln!("failing input ({} bytes): {}", input.len(), hex(&input));
            resume_unwind(panic);
        }
        if pool.len() < 1024 {
            pool.push(input);
        } else {
            let slot = rng.random_range(0..pool.len());
            pool[slot] = input;
        }
    }
    Run {
        cases,
        elapsed: started.elapsed(),
    }
}

fn mutate(rng: &mut StdRng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let position = if out.is_empty() {
            0
        } else {
            rng.random_range(0..out.len())
        };
        match rng.random_range(0..5) {
            0 if !out.is_empty() => out[position] ^= 1 << rng.random_range(0..8),
            1 if !out.is_empty() => out[position] = rng.random(),
            2 => out.insert(position, rng.random()),
            3 if !out.is_empty() => {
                out.remove(position);
            }
            _ => {
                let start = rng.random_range(0..=other.len());
                let end = rng.random_range(start..=other.len());
                out.splice(position..position, other[start..end].iter().copied());
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
