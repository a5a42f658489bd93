//! `make bench`: layered-image performance against baselines measured in the same run.
//!
//! A synthetic store (about 300 paths, about 1.2 GB, a long-tailed mix of file sizes, a DAG of
//! references) is generated once under `target/bench-store`. Reported, as medians of several
//! runs with a warm page cache:
//! - stream: `stowage stream` > /dev/null ÷ `tar -cf - <paths> | cat > /dev/null`;
//! - build (plan + every layer's digest): `stowage build-stream` ÷
//!   `tar -cf - <paths> | openssl dgst -sha256`;
//! - the stream's peak memory (GNU time's max RSS) for the whole store and for half of it;
//! - planning alone for a 10,000-path graph;
//! - the largest layer's share of the bytes with maxLayers = 100;
//! - an image on a base archive holding the whole store (about 1.2 GB): streaming it ÷
//!   `tar | cat` as above, and its build (which verifies the base) ÷ `openssl dgst -sha256` of
//!   the base archive;
//! - merging 1, 4 and 16 images on that base, each with a small layer of its own: the merged
//!   stream's time and size, which follow the distinct layers, not the number of images.
//!
//! The report (Markdown) goes to stdout; progress to stderr.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use stowage::plan::{plan_layers, PathInfo};

const PATHS: usize = 300;
const RUNS: usize = 5;
const SEED: u64 = 0x5eed_cafe;

/// xorshift64*: a fixed, dependency-free source of "random" sizes, so every run and every
/// machine benchmarks the same store.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A store path name: 32 characters of Nix's base-32 alphabet, then the name.
fn store_name(i: usize, rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let hash: String = (0..32).map(|_| ALPHABET[rng.below(32) as usize] as char).collect();
    format!("{hash}-pkg{i}")
}

/// A long-tailed file size: mostly small, some medium, a few large.
fn file_size(rng: &mut Rng) -> u64 {
    match rng.below(1000) {
        0..=899 => 100 + rng.below(32 << 10),
        900..=989 => (32 << 10) + rng.below(2 << 20),
        _ => (2 << 20) + rng.below(28 << 20),
    }
}

/// Generates the synthetic store (once) and returns its closure.
fn synthetic_store(store: &Path) -> Vec<PathInfo> {
    let mut rng = Rng(SEED);
    let mut closure: Vec<PathInfo> = Vec::new();
    let done = store.join(".complete");
    let fresh = !done.exists();
    if fresh {
        let _ = fs::remove_dir_all(store);
        fs::create_dir_all(store).unwrap();
        eprintln!("bench: generating the synthetic store in {}", store.display());
    }
    let mut block = vec![0u8; 1 << 20];
    // The bytes come from their own generator, so the layout (names, sizes, references) is the
    // same whether or not the files are written this time.
    let mut bytes = Rng(!SEED);
    for i in 0..PATHS {
        let path = store.join(store_name(i, &mut rng));
        let files = 1 + rng.below(30);
        let mut size = 0;
        for f in 0..files {
            let len = file_size(&mut rng);
            size += len + 200; // NAR framing per file, roughly
            if fresh {
                let dir = path.join(format!("d{}", f % 4));
                fs::create_dir_all(&dir).unwrap();
                let mut out = std::io::BufWriter::new(fs::File::create(dir.join(format!("f{f}"))).unwrap());
                let mut left = len;
                while left > 0 {
                    for b in block.iter_mut().step_by(8) {
                        *b = bytes.next() as u8;
                    }
                    let n = left.min(block.len() as u64) as usize;
                    std::io::Write::write_all(&mut out, &block[..n]).unwrap();
                    left -= n as u64;
                }
            }
        }
        let refs = rng.below(5) as usize;
        let references =
            (0..refs.min(i)).map(|_| closure[rng.below(i as u64) as usize].path.clone()).collect::<Vec<_>>();
        closure.push(PathInfo { path: path.to_string_lossy().into_owned(), nar_size: size, references });
    }
    if fresh {
        fs::write(&done, "").unwrap();
    }
    closure
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Median wall time of `RUNS` runs of `cmd` (after one warm-up run).
fn time_shell(script: &str) -> Duration {
    let run = || {
        let start = Instant::now();
        let out = Command::new("bash")
            .args(["-o", "pipefail", "-c", script])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
        start.elapsed()
    };
    run();
    median((0..RUNS).map(|_| run()).collect())
}

/// Writes the attributes `stowage build-stream` reads and returns their file. The image is
/// tagged with the name of `out`; with a base (`from_image`), its budget is the most layers an
/// image may have.
fn attrs(dir: &Path, store: &Path, closure: &[PathInfo], out: &Path, from_image: Option<&Path>) -> PathBuf {
    let max_layers = if from_image.is_some() { 125 } else { 100 };
    let tag = out.file_name().unwrap().to_string_lossy();
    let closure: Vec<_> = closure
        .iter()
        .map(|p| serde_json::json!({ "path": p.path, "narSize": p.nar_size, "references": p.references }))
        .collect();
    let attrs = serde_json::json!({
        "image": {
            "name": "bench", "baseName": "bench", "tag": tag, "architecture": "amd64", "variant": null,
            "created": "1970-01-01T00:00:01Z", "mtime": "1970-01-01T00:00:01Z", "uid": 0, "gid": 0,
            "uname": "root", "gname": "root", "maxLayers": max_layers, "includeStorePaths": true,
        },
        "contents": [], "config": {}, "storeDir": store, "closure": closure, "outputs": { "out": out },
        "fromImage": from_image,
    });
    let file = dir.join(format!("{}.attrs.json", out.file_name().unwrap().to_string_lossy()));
    fs::write(&file, attrs.to_string()).unwrap();
    file
}

fn main() {
    let stowage = env!("CARGO_BIN_EXE_stowage");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-store");
    let store = root.join("store");
    let closure = synthetic_store(&store);
    let total: u64 = closure.iter().map(|p| p.nar_size).sum();
    let work = tempfile::tempdir().unwrap();
    let paths: Vec<String> = closure.iter().map(|p| p.path.trim_start_matches('/').to_owned()).collect();
    let list = work.path().join("paths");
    fs::write(&list, paths.join("\n")).unwrap();

    eprintln!("bench: build (plan + digests)");
    let stream = work.path().join("stream");
    let attrs_file = attrs(work.path(), &store, &closure, &stream, None);
    let build = time_shell(&format!("NIX_ATTRS_JSON_FILE={} {stowage} build-stream", attrs_file.display()));
    let tar_sha =
        time_shell(&format!("tar -C / -cf - -T {} | openssl dgst -sha256 >/dev/null", list.display()));

    eprintln!("bench: stream");
    let streamed = time_shell(&format!("{stowage} stream {} 2>/dev/null >/dev/null", stream.display()));
    let tar_cat = time_shell(&format!("tar -C / -cf - -T {} | cat >/dev/null", list.display()));

    eprintln!("bench: stream memory");
    let peak = |spec: &Path| -> u64 {
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%M", stowage, "stream"])
            .arg(spec)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).lines().last().unwrap().trim().parse().unwrap()
    };
    let half_stream = work.path().join("half-stream");
    let half_attrs = attrs(work.path(), &store, &closure[..PATHS / 2], &half_stream, None);
    run_builder(stowage, "build-stream", &half_attrs);
    let (peak_full, peak_half) = (peak(&stream), peak(&half_stream));

    eprintln!("bench: planning a 10,000-path graph");
    let mut rng = Rng(SEED);
    let big: Vec<PathInfo> = (0..10_000)
        .map(|i| PathInfo {
            path: format!("/store/{}", store_name(i, &mut rng)),
            nar_size: file_size(&mut rng),
            references: (0..rng.below(6).min(i as u64))
                .map(|_| format!("/store/p{}", rng.below(i as u64)))
                .collect(),
        })
        .collect();
    let planning = median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(plan_layers(&big, 99));
                start.elapsed()
            })
            .collect(),
    );

    let plan: serde_json::Value =
        serde_json::from_str(fs::read_to_string(&stream).unwrap().split_once('\n').unwrap().1).unwrap();
    let sizes: Vec<u64> =
        plan["images"][0]["layers"].as_array().unwrap().iter().map(|l| l["size"].as_u64().unwrap()).collect();
    let layer_bytes: u64 = sizes.iter().sum();
    let largest_layer = *sizes.iter().max().unwrap();
    let largest_path = closure.iter().map(|p| p.nar_size).max().unwrap();

    eprintln!("bench: an image on a base of the whole store");
    let base = work.path().join("base.tar");
    let status = Command::new(stowage)
        .arg("stream")
        .arg(&stream)
        .stdout(fs::File::create(&base).unwrap())
        .stderr(Stdio::null())
        .status();
    assert!(status.unwrap().success());
    let base_size = fs::metadata(&base).unwrap().len();
    // Small paths of their own for the derived images: the smallest ones of the store.
    let mut small: Vec<&PathInfo> = closure.iter().collect();
    small.sort_by_key(|p| p.nar_size);
    let derived = |i: usize| -> PathBuf {
        let out = work.path().join(format!("derived-{i}"));
        let own = PathInfo { references: vec![], ..small[i].clone() };
        let attrs = attrs(work.path(), &store, &[own], &out, Some(&base));
        run_builder(stowage, "build-stream", &attrs);
        out
    };
    let on_base = derived(0);
    let on_base_attrs = work.path().join("derived-0.attrs.json");
    let on_base_build = time_shell(&format!(
        "NIX_ATTRS_JSON_FILE={} {stowage} build-stream 2>/dev/null",
        on_base_attrs.display()
    ));
    let base_sha = time_shell(&format!("openssl dgst -sha256 {} >/dev/null", base.display()));
    let on_base_stream =
        time_shell(&format!("{stowage} stream {} 2>/dev/null >/dev/null", on_base.display()));

    eprintln!("bench: merging 1, 4 and 16 images on that base");
    let streams: Vec<PathBuf> = (0..16).map(derived).collect();
    let merges: Vec<(usize, usize, Duration, u64)> = [1, 4, 16]
        .into_iter()
        .map(|n| {
            let out = work.path().join(format!("merged-{n}"));
            let attrs = work.path().join(format!("merged-{n}.attrs.json"));
            let images: Vec<_> = streams[..n].iter().map(|p| p.to_string_lossy().into_owned()).collect();
            fs::write(&attrs, serde_json::json!({ "images": images, "outputs": { "out": out } }).to_string())
                .unwrap();
            run_builder(stowage, "build-merge-stream", &attrs);
            let time = time_shell(&format!("{stowage} stream {} 2>/dev/null >/dev/null", out.display()));
            let size = Command::new("bash")
                .args(["-c", &format!("{stowage} stream {} 2>/dev/null | wc -c", out.display())])
                .output()
                .unwrap();
            let plan: serde_json::Value =
                serde_json::from_str(fs::read_to_string(&out).unwrap().split_once('\n').unwrap().1).unwrap();
            let distinct: std::collections::BTreeSet<&str> = plan["images"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|i| i["layers"].as_array().unwrap())
                .map(|l| l["digest"].as_str().unwrap())
                .collect();
            (n, distinct.len(), time, String::from_utf8_lossy(&size.stdout).trim().parse().unwrap())
        })
        .collect();

    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!(
        "## stowage benchmark ({} paths, {:.2} GB, medians of {RUNS} runs)\n",
        closure.len(),
        total as f64 / 1e9
    );
    println!("| measure | stowage | baseline | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| stream to /dev/null vs `tar \\| cat` | {} | {} | {:.2} | ≤ 1.25 |",
        secs(streamed),
        secs(tar_cat),
        streamed.as_secs_f64() / tar_cat.as_secs_f64()
    );
    println!(
        "| build (plan + digests) vs `tar \\| openssl dgst -sha256` | {} | {} | {:.2} | ≤ 1.3 |",
        secs(build),
        secs(tar_sha),
        build.as_secs_f64() / tar_sha.as_secs_f64()
    );
    println!(
        "| stream peak memory, whole store / half of it | {} / {} MiB | | | ≤ 64 MiB, flat |",
        peak_full / 1024,
        peak_half / 1024
    );
    println!("| planning a 10,000-path graph | {:.1} ms | | | ≤ 200 ms |", planning.as_secs_f64() * 1e3);
    println!(
        "| largest layer's share of bytes (maxLayers 100, {} layers) | {:.1} % (largest path: {:.1} %) | | | |",
        sizes.len(),
        100.0 * largest_layer as f64 / layer_bytes as f64,
        100.0 * largest_path as f64 / total as f64
    );
    println!(
        "| image on a {:.2} GB base: stream vs `tar \\| cat` | {} | {} | {:.2} | ≤ 1.3 |",
        base_size as f64 / 1e9,
        secs(on_base_stream),
        secs(tar_cat),
        on_base_stream.as_secs_f64() / tar_cat.as_secs_f64()
    );
    println!(
        "| image on that base: build (verifies the base) vs `openssl dgst -sha256` of it | {} | {} | {:.2} | |",
        secs(on_base_build),
        secs(base_sha),
        on_base_build.as_secs_f64() / base_sha.as_secs_f64()
    );
    let (_, _, time_1, size_1) = merges[0];
    for &(n, distinct, time, size) in &merges {
        println!(
            "| merge of {n} image(s) on that base ({distinct} distinct layers): stream time / size | {} / {:.3} GB | ×{:.2} / ×{:.3} of 1 image | | grows with distinct layers |",
            secs(time),
            size as f64 / 1e9,
            time.as_secs_f64() / time_1.as_secs_f64(),
            size as f64 / size_1 as f64
        );
    }
}

/// Runs the builder subcommand `subcommand` on the attributes in `attrs`.
fn run_builder(stowage: &str, subcommand: &str, attrs: &Path) {
    let out = Command::new(stowage).arg(subcommand).env("NIX_ATTRS_JSON_FILE", attrs).output().unwrap();
    assert!(out.status.success(), "{subcommand} failed: {}", String::from_utf8_lossy(&out.stderr));
}
