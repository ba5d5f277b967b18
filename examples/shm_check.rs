//! Consistency check of a shm store file (the shm tests run it at the end
//! of the soak): `shm_check PATH SIZE_BYTES`. Prints a summary; exits 1 with
//! the problems found, 2 on bad arguments.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(Ok(size))) = (args.get(1), args.get(2).map(|s| s.parse::<usize>()))
    else {
        eprintln!("usage: shm_check PATH SIZE_BYTES");
        std::process::exit(2);
    };
    match sesscache::shm_check_file(std::path::Path::new(path), size) {
        Ok(summary) => println!("consistent: {summary}"),
        Err(problems) => {
            println!("INCONSISTENT: {problems}");
            std::process::exit(1);
        }
    }
}
