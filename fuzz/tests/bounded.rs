//! Each fuzz target for a bounded number of cases (`FUZZ_CASES`, else a default sized to a few
//! seconds in a debug build), from a fixed seed (`FUZZ_SEED`) so that a failure reproduces. The
//! README has a longer run's figures.

use idledger_fuzz::{Run, run, targets};

fn cases(default: u64) -> u64 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_261_123)
}

/// Prints a target's figures; each target panics on the first input that breaks its property,
/// so reaching here means every case held. The count proves the cases were really run.
fn report(name: &str, run: Run) {
    assert!(run.cases > 0, "fuzz {name}: no case ran");
    let rate = run.cases as f64 / run.elapsed.as_secs_f64().max(1e-9);
    println!(
        "fuzz {name}: {} cases in {:.1} s ({rate:.0}/s)",
        run.cases,
        run.elapsed.as_secs_f64()
    );
}

#[test]
fn search_query() {
    let seeds: &[&[u8]] = &[b"\x03\x00\x08\x01\x00\x06\x02"];
    report(
        "search_query",
        run(targets::search_query, seeds, cases(20_000), seed()),
    );
}

#[test]
fn pagination_links() {
    let seeds: &[&[u8]] = &[b"\x02\x00\x06\x01\x05\x00"];
    report(
        "pagination_links",
        run(targets::pagination_links, seeds, cases(20_000), seed()),
    );
}

/// Parsing a phone number costs milliseconds (the metadata of every region is consulted).
#[test]
fn phone_number() {
    let seeds: &[&[u8]] = &[b"\x01\x0b\x01\x05\x05\x05\x00\x01\x00\x00\x00\x00\x00"];
    report(
        "phone_number",
        run(targets::phone_number, seeds, cases(2_000), seed()),
    );
}

#[test]
fn jwt() {
    report("jwt", run(targets::jwt, &[], cases(20_000), seed()));
}
