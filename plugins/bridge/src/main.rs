fn main() {
    bridge::run()
}
