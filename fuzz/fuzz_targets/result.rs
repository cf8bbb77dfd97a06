#![no_main]
// A plugin's output (a result in any version) read, then printed in every version.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    libcni::fuzzing::result(data);
});
