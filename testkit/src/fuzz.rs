//! Replay of the fuzzers' kept inputs as ordinary tests.

use std::path::Path;

/// Replays every input kept in `testdata/fuzz-regressions/<target>/` (the fuzzers'
/// seeds and every input they ever crashed on) through `run`, the fuzz target's
/// entry point. A folder with no input fails: a replay of nothing proves nothing.
pub fn replay_fuzz_inputs(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/fuzz-regressions")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
    {
        run(&std::fs::read(entry.path()).unwrap());
        count += 1;
    }
    assert!(count > 0, "{} holds no input to replay", dir.display());
}
