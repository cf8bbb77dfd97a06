#![no_main]
// Network configuration and configuration lists from arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    libcni::fuzzing::config(data);
    cni_runtime::conflist::fuzz(data);
});
