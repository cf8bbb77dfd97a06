#![no_main]
// CNI_ARGS as a runtime may send them.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    libcni::fuzzing::cni_args(data);
});
