fn main() {
    static_ipam::run()
}
