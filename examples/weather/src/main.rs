//! `weather --role ROLE --version vN --listen IP:PORT [--upstream IP:PORT]`: one stand-in service.

fn main() {
    if let Err(err) = canary_weather::cli(std::env::args().skip(1)) {
        eprintln!("weather: {err}");
        std::process::exit(2);
    }
}
