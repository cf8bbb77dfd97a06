fn main() {
    sriov::run()
}
