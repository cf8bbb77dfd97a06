fn main() {
    macvlan::run()
}
