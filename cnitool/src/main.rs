fn main() -> std::process::ExitCode {
    cnitool::run()
}
