//! Every input the fuzzers (fuzz/, scripts/fuzz.sh) ever crashed on, replayed
//! through the same entry points, so that a fixed crash stays fixed.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/fuzz-regressions")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
    {
        if entry.file_name() == ".gitkeep" {
            continue;
        }
        run(&std::fs::read(entry.path()).unwrap());
        count += 1;
    }
    count
}

#[test]
fn config_inputs_that_once_crashed() {
    replay("config", libcni::fuzzing::config);
}

#[test]
fn result_inputs_that_once_crashed() {
    replay("result", libcni::fuzzing::result);
}

#[test]
fn cni_args_inputs_that_once_crashed() {
    replay("cni_args", libcni::fuzzing::cni_args);
}
