//! The `strata` broker binary. The Kafka protocol server is built by the broker issue; until
//! then this binary only reports that.

fn main() {
    eprintln!("strata: the Kafka broker is not built yet; the storage engine is `strata-engine`");
    std::process::exit(2);
}
