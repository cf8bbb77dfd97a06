//! Every input the fuzzers (fuzz/, scripts/dev/fuzz.sh) were seeded with or ever crashed
//! on, replayed through the same entry points, so that a fixed crash stays fixed.

#[test]
fn config_inputs_that_once_crashed() {
    testkit::replay_fuzz_inputs("config", libcni::fuzzing::config);
}

#[test]
fn result_inputs_that_once_crashed() {
    testkit::replay_fuzz_inputs("result", libcni::fuzzing::result);
}

#[test]
fn cni_args_inputs_that_once_crashed() {
    testkit::replay_fuzz_inputs("cni_args", libcni::fuzzing::cni_args);
}
