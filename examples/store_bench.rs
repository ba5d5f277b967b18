//! Latency of the store's lookups and publishes (`make bench`, through
//! c-tests/bench/run-shm-bench.sh):
//! `store_bench URL THREADS OPS VALUE_BYTES [SIZE_BYTES]`, URL `shm` or
//! `redis://127.0.0.1:PORT`. Prints one line of `name=value` fields; exits
//! 1 if the store could not be used, 2 on bad arguments.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize, default: usize| {
        args.get(i)
            .map_or(Some(default), |s| s.parse::<usize>().ok())
    };
    let (Some(url), Some(threads), Some(ops), Some(value), Some(size)) = (
        args.get(1),
        num(2, 1),
        num(3, 20000),
        num(4, 300),
        num(5, 64 << 20),
    ) else {
        eprintln!(
            "usage: store_bench shm|redis://HOST:PORT [THREADS] [OPS] [VALUE_BYTES] [SIZE_BYTES]"
        );
        std::process::exit(2);
    };
    match sesscache::store_op_bench(url, size, threads, ops, value) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("store_bench: {e}");
            std::process::exit(1);
        }
    }
}
