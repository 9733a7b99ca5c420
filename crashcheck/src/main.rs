//! `novars-crashcheck`: see [`crashcheck::cli`].

fn main() {
    std::process::exit(crashcheck::cli::main());
}
