fn main() {
    tuning::run()
}
