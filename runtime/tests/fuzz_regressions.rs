//! The configuration inputs of the fuzzers, replayed through the configuration-list
//! half of the `config` fuzz target.

#[test]
fn conflist_inputs_that_once_crashed() {
    testkit::replay_fuzz_inputs("config", cni_runtime::conflist::fuzz);
}
