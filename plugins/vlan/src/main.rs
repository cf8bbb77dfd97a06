fn main() {
    vlan::run()
}
