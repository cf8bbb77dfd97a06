fn main() {
    host_local::run()
}
