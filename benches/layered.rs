//! `make bench`: stowage against the standard tools, over the same files, in the same run.
//!
//! Two stores are generated once under `target/bench-store`:
//! - **synthetic**: about 300 paths and 1.2 GB, a long-tailed mix of file sizes, bytes that
//!   are one eighth random (so they compress, but not to nothing), a DAG of references;
//! - **real**: copies of this machine's own files (an even sample of `/usr/lib` and
//!   `/usr/share`: libraries, docs, scripts, many small files) in 200 paths, about 600 MB, with
//!   a DAG of references.
//!
//! For each, as medians of [`RUNS`] runs (ours and the baseline's taking turns), with every
//! stream going through a pipe into `cat` as `docker load` reads it:
//! - the build of the plan (`stowage build-stream`, every layer's digest) ÷
//!   `tar -cf - PATHS | openssl dgst -sha256`;
//! - the stream ÷ `tar -cf - PATHS | cat` (digests verified as the stream goes);
//! - `buildLayeredImage` as Nix runs it — the plan, then the archive — with `gz` ÷
//!   `tar -cf - PATHS | pigz -nTR` (dockerTools' gz compressor) and with `zstd` ÷
//!   `tar -cf - PATHS | zstd -T0 -3`, and the archive sizes beside each other;
//! - `mergeImages` (gz) of four images on a shared base (the whole store) ÷
//!   `tar -cf - PATHS | pigz -nTR` of its distinct layers' paths;
//! - the peak memory (GNU time's max RSS) of the stream and of each archive build, on every
//!   core of the machine.
//!
//! - pushing the image to a registry on this machine (Debian's `docker-registry`, a fresh one
//!   for every first push): `stowage push` (gz, from the stream's plan) ÷ `skopeo copy
//!   docker-archive:… docker://…` of the same image, and a second push of the unchanged image
//!   ÷ the first (with the compressed-digest cache, and without it, as on another machine).
//!
//! - rebuilds on the synthetic store grown past 2 GB ("large", 550 paths): after the
//!   application (a path on top of the closure) changed, the stream's build ÷ the first, with
//!   the closure in a `buildLayer` layer (whose derivation Nix does not build again) and
//!   without; and that rebuild with its push ÷ the first build with its push. The same on the
//!   real files.
//!
//! - peak memory of the plan's build, the stream and the gz archive's build for a closure of
//!   20,000 paths and one of 10 GB (generated once).
//!
//! The synthetic store also gets an image on a base archive of the whole store (streamed ÷
//! `tar | cat`), merges of 1, 4 and 16 images on it, and planning alone for a 10,000-path
//! graph. The real files also make an image through `nix-build` in library mode ÷ with the
//! plugin (the same builder, so about 1). The report (Markdown) goes to stdout; progress to stderr.

use sha2::{Digest as _, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use stowage_core::format::closure::PathInfo;
use stowage_core::image::layering::plan_layers;

#[path = "../tests/support/mod.rs"]
mod support;
use support::registry::Registry;

/// Runs of each command; the median is reported.
const RUNS: usize = 5;
const SEED: u64 = 0x5eed_cafe;
const SYNTHETIC_PATHS: usize = 300;
/// Paths added to the synthetic store for the rebuild measures, which want a closure of 2 GB.
const LARGE_EXTRA_PATHS: usize = 250;
const REAL_PATHS: usize = 200;
/// About how many bytes of this machine's files the real store copies.
const REAL_BYTES: u64 = 600 << 20;

/// xorshift64*: a fixed, dependency-free source of "random" sizes, so every run and every
/// machine benchmarks the same synthetic store.
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
fn store_name(name: &str, rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let hash: String = (0..32).map(|_| ALPHABET[rng.below(32) as usize] as char).collect();
    format!("{hash}-{name}")
}

/// A long-tailed file size: mostly small, some medium, a few large.
fn file_size(rng: &mut Rng) -> u64 {
    match rng.below(1000) {
        0..=899 => 100 + rng.below(32 << 10),
        900..=989 => (32 << 10) + rng.below(2 << 20),
        _ => (2 << 20) + rng.below(28 << 20),
    }
}

/// Up to four references from path `i` to paths before it: a DAG.
fn references(i: usize, closure: &[PathInfo], rng: &mut Rng) -> Vec<String> {
    let refs = rng.below(5) as usize;
    (0..refs.min(i)).map(|_| closure[rng.below(i as u64) as usize].path.clone()).collect()
}

/// A generated store and the closure of all its paths.
struct DataSet {
    name: &'static str,
    store: PathBuf,
    closure: Vec<PathInfo>,
    files: usize,
}

impl DataSet {
    fn bytes(&self) -> u64 {
        self.closure.iter().map(|p| p.nar_size).sum()
    }
}

/// The file that marks a generated store as complete.
const COMPLETE: &str = ".complete";

/// The store under `root` and whether it is to be generated (it is not complete: whatever is
/// there is removed).
fn store_to_generate(root: &Path, name: &str) -> (PathBuf, bool) {
    let store = root.join("store");
    let fresh = !root.join(COMPLETE).exists();
    if fresh {
        let _ = fs::remove_dir_all(root);
        fs::create_dir_all(&store).unwrap();
        eprintln!("bench: generating the {name} store in {}", store.display());
    }
    (store, fresh)
}

/// Generates the synthetic store (once).
fn synthetic_store(root: &Path) -> DataSet {
    let (store, fresh) = store_to_generate(root, "synthetic");
    let mut closure = Vec::new();
    let files = generate_paths(&store, "pkg", SYNTHETIC_PATHS, SEED, fresh, &mut closure);
    if fresh {
        fs::write(root.join(COMPLETE), "").unwrap();
    }
    DataSet { name: "synthetic", store, closure, files }
}

/// The synthetic store grown past 2 GB: [`LARGE_EXTRA_PATHS`] more paths in the same store
/// (generated once), referring to its paths and each other.
fn large_store(synthetic: &DataSet) -> DataSet {
    let done = synthetic.store.with_file_name(".complete-large");
    let fresh = !done.exists();
    if fresh {
        eprintln!("bench: growing the synthetic store past 2 GB");
    }
    let mut closure = synthetic.closure.clone();
    let files = generate_paths(&synthetic.store, "big", LARGE_EXTRA_PATHS, !SEED >> 1, fresh, &mut closure);
    if fresh {
        fs::write(&done, "").unwrap();
    }
    DataSet { name: "large", store: synthetic.store.clone(), closure, files: synthetic.files + files }
}

/// Appends `count` generated paths (`prefix0`, `prefix1`, …) to `closure`, writing their files
/// when `write` (the layout is the same either way); returns how many files they have.
fn generate_paths(
    store: &Path,
    prefix: &str,
    count: usize,
    seed: u64,
    write: bool,
    closure: &mut Vec<PathInfo>,
) -> usize {
    let mut rng = Rng(seed);
    let mut block = vec![0u8; 1 << 20];
    // The bytes come from their own generator, so the layout (names, sizes, references) is the
    // same whether or not the files are written this time.
    let mut bytes = Rng(!seed);
    let mut count_files = 0;
    for _ in 0..count {
        let i = closure.len();
        let path = store.join(store_name(&format!("{prefix}{i}"), &mut rng));
        let files = 1 + rng.below(30);
        count_files += files as usize;
        let mut size = 0;
        for f in 0..files {
            let len = file_size(&mut rng);
            size += len + 200; // NAR framing per file, roughly
            if write {
                let dir = path.join(format!("d{}", f % 4));
                fs::create_dir_all(&dir).unwrap();
                write_generated(&dir.join(format!("f{f}")), len, &mut block, &mut bytes);
            }
        }
        let references = references(i, closure, &mut rng);
        closure.push(PathInfo { path: path.to_string_lossy().into_owned(), nar_size: size, references });
    }
    count_files
}

/// Writes a file of `len` bytes to `path`, one eighth of them from `data`, through `block`.
fn write_generated(path: &Path, len: u64, block: &mut [u8], data: &mut Rng) {
    let mut out = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let mut left = len;
    while left > 0 {
        for b in block.iter_mut().step_by(8) {
            *b = data.next() as u8;
        }
        let n = left.min(block.len() as u64) as usize;
        std::io::Write::write_all(&mut out, &block[..n]).unwrap();
        left -= n as u64;
    }
}

/// Every regular file and symlink under `dir`, sorted, with its size.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            walk(&path, out);
        } else if meta.is_file() || meta.file_type().is_symlink() {
            out.push((path, if meta.is_file() { meta.len() } else { 0 }));
        }
    }
}

/// Generates the store of real files (once): an even sample of this machine's `/usr/lib` and
/// `/usr/share` (every k-th file, k chosen for about [`REAL_BYTES`]), in [`REAL_PATHS`] paths of
/// consecutive files, each file at its own place under its path.
fn real_store(root: &Path) -> DataSet {
    let mut files = Vec::new();
    for dir in ["/usr/lib", "/usr/share"] {
        walk(Path::new(dir), &mut files);
    }
    let total: u64 = files.iter().map(|f| f.1).sum();
    let stride = (total / REAL_BYTES).max(1) as usize;
    let sample: Vec<&(PathBuf, u64)> = files.iter().step_by(stride).collect();
    let per_path = sample.len().div_ceil(REAL_PATHS);
    let (store, fresh) = store_to_generate(root, &format!("real ({} of this machine's files)", sample.len()));
    let mut rng = Rng(SEED);
    let mut closure: Vec<PathInfo> = Vec::new();
    for (i, group) in sample.chunks(per_path).enumerate() {
        let path = store.join(store_name(&format!("real{i}"), &mut rng));
        let mut size = 0;
        for (file, len) in group.iter().copied() {
            size += len + 200;
            if fresh {
                let to = path.join(file.strip_prefix("/").unwrap());
                fs::create_dir_all(to.parent().unwrap()).unwrap();
                match fs::read_link(file) {
                    Ok(target) => std::os::unix::fs::symlink(target, &to).unwrap(),
                    Err(_) => {
                        fs::copy(file, &to).unwrap();
                    }
                }
            }
        }
        let references = references(i, &closure, &mut rng);
        closure.push(PathInfo { path: path.to_string_lossy().into_owned(), nar_size: size, references });
    }
    if fresh {
        fs::write(root.join(COMPLETE), "").unwrap();
    }
    DataSet { name: "real", store, closure, files: sample.len() }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// One run of `script` (bash, with pipefail): its wall time.
fn run_shell(script: &str) -> Duration {
    let start = Instant::now();
    let out =
        Command::new("bash").args(["-o", "pipefail", "-c", script]).stdout(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    start.elapsed()
}

/// The median wall times of `ours` and `baseline`, run [`RUNS`] times each, taking turns so
/// that whatever else the machine does weighs on both alike.
fn pair(ours: &str, baseline: &str) -> (Duration, Duration) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        a.push(run_shell(ours));
        b.push(run_shell(baseline));
    }
    (median(a), median(b))
}

/// The median wall time of `script`, run [`RUNS`] times.
fn time_shell(script: &str) -> Duration {
    median((0..RUNS).map(|_| run_shell(script)).collect())
}

/// The peak memory (max RSS, MiB) of the first command of the pipeline `script`.
fn peak_mib(command: &str, rest: &str, dir: &Path) -> u64 {
    let report = dir.join("peak");
    run_shell(&format!("/usr/bin/time -f %M -o {} env {command} {rest}", report.display()));
    fs::read_to_string(&report).unwrap().trim().parse::<u64>().unwrap() / 1024
}

/// Writes the attributes `stowage build-stream` reads and returns their file. The image is
/// tagged with the name of `out`; with a base (`from_image`), its budget is the most layers an
/// image may have.
fn attrs(dir: &Path, set: &DataSet, closure: &[PathInfo], out: &Path, from_image: Option<&Path>) -> PathBuf {
    write_attrs(dir, out, image_attrs(set, closure, out, from_image, &[]))
}

/// The attributes of [`attrs`], the image built on the buildLayer outputs `layers`.
fn image_attrs(
    set: &DataSet,
    closure: &[PathInfo],
    out: &Path,
    from_image: Option<&Path>,
    layers: &[&Path],
) -> serde_json::Value {
    let max_layers = if from_image.is_some() { 125 } else { 100 };
    let tag = out.file_name().unwrap().to_string_lossy();
    // (the base, outside the store here, is not among the arguments the builder checks)
    serde_json::json!({
        "function": "streamLayeredImage",
        "arguments": {
            "name": "bench", "tag": tag, "architecture": "amd64", "created": "1970-01-01T00:00:01Z",
            "maxLayers": max_layers, "layers": layers,
        },
        "system": "x86_64-linux",
        "contents": [], "config": {}, "storeDir": set.store, "closure": closure_json(closure),
        "outputs": { "out": out }, "fromImage": from_image,
    })
}

/// A closure as Nix exports it to a build. The NAR hash, which Nix knows without reading a path,
/// stands in as the digest of the path's name: a generated path's files are fixed by its name.
fn closure_json(closure: &[PathInfo]) -> Vec<serde_json::Value> {
    closure
        .iter()
        .map(|p| {
            let nar_hash = format!("sha256:{:x}", Sha256::digest(p.path.as_bytes()));
            serde_json::json!({ "path": p.path, "narSize": p.nar_size, "narHash": nar_hash, "references": p.references })
        })
        .collect()
}

/// The attributes `stowage build-merge-stream` reads, merging `images` (in `dir`, which stands
/// for the store the check wants them in) into `out`.
fn merge_attrs(dir: &Path, images: &[impl AsRef<Path>], out: &Path) -> serde_json::Value {
    let images: Vec<&Path> = images.iter().map(AsRef::as_ref).collect();
    serde_json::json!({
        "function": "streamMergedImages", "arguments": { "images": images }, "system": "x86_64-linux",
        "storeDir": dir, "images": images, "outputs": { "out": out },
    })
}

/// Writes the attributes of a derivation whose output is `out`; returns their file.
fn write_attrs(dir: &Path, out: &Path, attrs: serde_json::Value) -> PathBuf {
    let file = dir.join(format!("{}.attrs.json", out.file_name().unwrap().to_string_lossy()));
    fs::write(&file, attrs.to_string()).unwrap();
    file
}

/// The shell command running builder `subcommand` on the attributes in `attrs`.
fn builder(stowage: &str, subcommand: &str, attrs: &Path) -> String {
    format!("NIX_ATTRS_JSON_FILE={} {stowage} {subcommand} 2>/dev/null", attrs.display())
}

/// Runs builder `subcommand` on the attributes in `attrs`.
fn run_builder(stowage: &str, subcommand: &str, attrs: &Path) {
    run_shell(&builder(stowage, subcommand, attrs));
}

/// A Markdown table row.
struct Row {
    measure: String,
    ours: String,
    baseline: String,
    ratio: String,
    target: &'static str,
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// A ratio, with a third decimal below 0.1, where the targets are.
fn ratio(ours: Duration, baseline: Duration) -> String {
    let ratio = ours.as_secs_f64() / baseline.as_secs_f64();
    if ratio < 0.1 {
        format!("{ratio:.3}")
    } else {
        format!("{ratio:.2}")
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn size(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

fn timed_row(measure: String, (ours, baseline): (Duration, Duration), target: &'static str) -> Row {
    Row { measure, ours: secs(ours), baseline: secs(baseline), ratio: ratio(ours, baseline), target }
}

/// A row of times and the sizes of what each side made: ours, then the baseline's.
fn sized_row(measure: String, ours: (Duration, u64), baseline: (Duration, u64), target: &'static str) -> Row {
    Row {
        measure,
        ours: format!("{} ({})", secs(ours.0), mb(ours.1)),
        baseline: format!("{} ({})", secs(baseline.0), mb(baseline.1)),
        ratio: format!("{}; size {:.3}×", ratio(ours.0, baseline.0), ours.1 as f64 / baseline.1 as f64),
        target,
    }
}

/// Everything measured on one store.
fn measure(stowage: &str, set: &DataSet, work: &Path, rows: &mut Vec<Row>) {
    let dir = work.join(set.name);
    fs::create_dir_all(&dir).unwrap();
    let name = set.name;
    let list = dir.join("paths");
    let paths: Vec<&str> = set.closure.iter().map(|p| p.path.trim_start_matches('/')).collect();
    fs::write(&list, paths.join("\n")).unwrap();
    let tar = format!("tar -C / -cf - -T {}", list.display());
    // A warm page cache for ours and the baselines alike.
    run_shell(&format!("{tar} | cat >/dev/null"));

    eprintln!("bench ({name}): the plan");
    let stream = dir.join("stream");
    let stream_attrs = attrs(&dir, set, &set.closure, &stream, None);
    let plan = builder(stowage, "build-stream", &stream_attrs);
    let timed = pair(&plan, &format!("{tar} | openssl dgst -sha256 >/dev/null"));
    let planned = timed.0;
    rows.push(timed_row(
        format!("{name}: plan (layers sized from metadata, not read) ÷ `tar \\| openssl dgst -sha256`"),
        timed,
        "≤ 1.3",
    ));
    let script = fs::read_to_string(&stream).unwrap();
    let plan_json: serde_json::Value = serde_json::from_str(script.split_once('\n').unwrap().1).unwrap();
    let sizes: Vec<u64> = plan_json["images"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .collect();
    let largest_path = set.closure.iter().map(|p| p.nar_size).max().unwrap();
    rows.push(Row {
        measure: format!("{name}: largest layer's share of bytes (maxLayers 100, {} layers)", sizes.len()),
        ours: format!(
            "{:.1} % (largest path: {:.1} %)",
            100.0 * *sizes.iter().max().unwrap() as f64 / sizes.iter().sum::<u64>() as f64,
            100.0 * largest_path as f64 / set.bytes() as f64
        ),
        baseline: String::new(),
        ratio: String::new(),
        target: "",
    });

    eprintln!("bench ({name}): the stream");
    let streamed = format!("{stowage} stream {} 2>/dev/null | cat >/dev/null", stream.display());
    let timed = pair(&streamed, &format!("{tar} | cat >/dev/null"));
    rows.push(timed_row(format!("{name}: stream `\\| cat` ÷ `tar \\| cat`"), timed, "≤ 1.25"));
    let into_null = format!("{stowage} stream {} 2>/dev/null >/dev/null", stream.display());
    let timed = pair(&streamed, &into_null);
    rows.push(timed_row(format!("{name}: stream `\\| cat` ÷ stream `> /dev/null`"), timed, "≈ 1"));

    for (compressor, baseline_tool, target) in
        [("gz", "pigz -nTR", "≤ 0.8, size ≤ 1.02×"), ("zstd", "zstd -T0 -3 -q", "≤ 1.1, size ≤ 1.02×")]
    {
        eprintln!("bench ({name}): buildLayeredImage, {compressor}");
        let archive = dir.join(format!("archive.{compressor}"));
        let archive_attrs = write_attrs(
            &dir,
            &archive,
            serde_json::json!({ "stream": stream, "compressor": compressor, "outputs": { "out": archive } }),
        );
        let archive_step = builder(stowage, "build-archive", &archive_attrs);
        let baseline_out = dir.join(format!("baseline.{compressor}"));
        let (ours, baseline) =
            pair(&archive_step, &format!("{tar} | {baseline_tool} > {}", baseline_out.display()));
        let (our_size, their_size) = (size(&archive), size(&baseline_out));
        rows.push(sized_row(
            format!(
                "{name}: `buildLayeredImage` {compressor}, the archive ÷ `tar \\| {baseline_tool}`; sizes"
            ),
            (ours, our_size),
            (baseline, their_size),
            target,
        ));
        // What a first `nix-build` waits for: the plan's derivation, then the archive's.
        let whole = planned + ours;
        rows.push(Row {
            measure: format!(
                "{name}: `buildLayeredImage` {compressor}, plan + archive (sum of medians) ÷ the same"
            ),
            ours: secs(whole),
            baseline: secs(baseline),
            ratio: ratio(whole, baseline),
            target: "",
        });
        let peak = peak_mib(&builder(stowage, "build-archive", &archive_attrs), "", &dir);
        rows.push(Row {
            measure: format!("{name}: `buildLayeredImage` {compressor}: the archive build's peak memory"),
            ours: format!("{peak} MiB"),
            baseline: String::new(),
            ratio: String::new(),
            target: "≤ 64 MiB + 16 MiB per core",
        });
    }
    let peak =
        peak_mib(&format!("{stowage} stream {}", stream.display()), "2>/dev/null | cat >/dev/null", &dir);
    rows.push(Row {
        measure: format!("{name}: the stream's peak memory"),
        ours: format!("{peak} MiB"),
        baseline: String::new(),
        ratio: String::new(),
        target: "≤ 64 MiB",
    });

    eprintln!("bench ({name}): mergeImages of 4 images on a shared base, gz");
    let base = dir.join("base.tar");
    run_shell(&format!("{stowage} stream {} 2>/dev/null > {}", stream.display(), base.display()));
    let mut small: Vec<&PathInfo> = set.closure.iter().collect();
    small.sort_by_key(|p| p.nar_size);
    let derived: Vec<PathBuf> = (0..4)
        .map(|i| {
            let out = dir.join(format!("derived-{i}"));
            let own = PathInfo { references: vec![], ..small[i].clone() };
            run_builder(stowage, "build-stream", &attrs(&dir, set, &[own], &out, Some(&base)));
            out
        })
        .collect();
    let merged = dir.join("merged");
    let merged_attrs = write_attrs(&dir, &merged, merge_attrs(&dir, &derived, &merged));
    let merged_archive = dir.join("merged.gz");
    let merged_archive_attrs = write_attrs(
        &dir,
        &merged_archive,
        serde_json::json!({ "stream": merged, "compressor": "gz", "outputs": { "out": merged_archive } }),
    );
    let merge = format!(
        "{} && {}",
        builder(stowage, "build-merge-stream", &merged_attrs),
        builder(stowage, "build-archive", &merged_archive_attrs)
    );
    // The distinct layers hold the whole store (the base) and each image's own path, which is
    // in the store too: the baseline compresses the store once.
    let baseline_out = dir.join("merge-baseline.gz");
    let timed = pair(&merge, &format!("{tar} | pigz -nTR > {}", baseline_out.display()));
    rows.push(Row {
        measure: format!("{name}: `mergeImages` gz of 4 images on a shared base ÷ `tar \\| pigz -nTR` of its distinct layers; sizes"),
        ours: format!("{} ({})", secs(timed.0), mb(size(&merged_archive))),
        baseline: format!("{} ({})", secs(timed.1), mb(size(&baseline_out))),
        ratio: ratio(timed.0, timed.1),
        target: "≤ 0.8",
    });
    for file in [&base, &merged_archive, &baseline_out, &dir.join("archive.gz"), &dir.join("archive.zstd")] {
        let _ = fs::remove_file(file);
    }
}

/// Pushes of the image of `set` (its stream, written by [`measure`]) to a registry on this
/// machine, against skopeo's push of the same image from its docker-archive.
fn pushes(stowage: &str, set: &DataSet, work: &Path, rows: &mut Vec<Row>) {
    let name = set.name;
    eprintln!("bench ({name}): push to a registry");
    let dir = work.join(name);
    let stream = dir.join("stream");
    let archive = dir.join("push.tar");
    run_shell(&format!("{stowage} stream {} 2>/dev/null > {}", stream.display(), archive.display()));
    let cache = dir.join("push-cache");
    let push = |registry: &Registry| {
        format!(
            "XDG_CACHE_HOME={} {stowage} push {} docker://{}/bench/{name}:1 2>/dev/null",
            cache.display(),
            stream.display(),
            registry.address()
        )
    };
    let (mut first, mut again, mut uncached, mut skopeo) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut our_bytes, mut their_bytes) = (0, 0);
    for _ in 0..RUNS {
        let registry = Registry::start();
        let _ = fs::remove_dir_all(&cache);
        first.push(run_shell(&push(&registry)));
        our_bytes = registry.stored_bytes();
        again.push(run_shell(&push(&registry)));
        fs::remove_dir_all(&cache).unwrap();
        uncached.push(run_shell(&push(&registry)));
        drop(registry);
        let registry = Registry::start();
        skopeo.push(run_shell(&format!(
            "skopeo copy -q --dest-tls-verify=false docker-archive:{} docker://{}/bench/{name}:1",
            archive.display(),
            registry.address()
        )));
        their_bytes = registry.stored_bytes();
    }
    let (first, again, uncached, skopeo) = (median(first), median(again), median(uncached), median(skopeo));
    rows.push(sized_row(
        format!("{name}: `stowage push` (gz) to a new registry ÷ `skopeo copy docker-archive:… docker://…`; bytes stored"),
        (first, our_bytes),
        (skopeo, their_bytes),
        "≤ 0.7",
    ));
    rows.push(timed_row(
        format!("{name}: the same push again, unchanged ÷ the first"),
        (again, first),
        "≤ 0.05",
    ));
    rows.push(timed_row(
        format!("{name}: … again without the digest cache (another machine) ÷ the first"),
        (uncached, first),
        "",
    ));
    let _ = fs::remove_file(&archive);
}

/// A rebuild after one application path changed, on `set`: building the image's
/// stream (its plan) again ÷ the first build, with the closure in an explicit layer
/// (`buildLayer`, whose derivation Nix does not build again) and without; and the rebuild and
/// its push to a registry that holds the first image ÷ the first build and its push.
fn rebuilds(stowage: &str, set: &DataSet, work: &Path, rows: &mut Vec<Row>) {
    let name = set.name;
    eprintln!("bench ({name}): rebuilds after a change of the application");
    let dir = work.join(format!("{name}-rebuild"));
    fs::create_dir_all(&dir).unwrap();
    // two versions of an application (1 MB) on the whole closure, in the store
    let apps: Vec<PathInfo> = (1..=2)
        .map(|version| {
            let path = set.store.join(format!("{}-app", "0".repeat(31) + &version.to_string()));
            fs::create_dir_all(&path).unwrap();
            fs::write(path.join("app"), vec![version as u8; 1 << 20]).unwrap();
            let roots = set.closure.iter().rev().take(8).map(|p| p.path.clone()).collect();
            PathInfo {
                path: path.to_string_lossy().into_owned(),
                nar_size: (1 << 20) + 200,
                references: roots,
            }
        })
        .collect();
    let with_app = |app: &PathInfo| -> Vec<PathInfo> {
        let mut closure = set.closure.clone();
        closure.push(app.clone());
        closure
    };
    let layer_out = set.store.join(format!("{}-layer", "1".repeat(32)));
    let layer_attrs = write_attrs(
        &dir,
        &layer_out,
        serde_json::json!({
            "function": "buildLayer",
            "arguments": { "deps": set.closure.iter().map(|p| &p.path).collect::<Vec<_>>() },
            "system": "x86_64-linux", "storeDir": set.store, "closure": closure_json(&set.closure),
            "outputs": { "out": layer_out },
        }),
    );
    // a stream's attributes, and the stream they build
    let stream = |version: usize, layers: &[&Path]| -> (PathBuf, PathBuf) {
        let out = dir.join(format!("stream-{version}{}", if layers.is_empty() { "" } else { "-layered" }));
        (write_attrs(&dir, &out, image_attrs(set, &with_app(&apps[version - 1]), &out, None, layers)), out)
    };
    let build_layer =
        format!("rm -rf {} && {}", layer_out.display(), builder(stowage, "build-layer", &layer_attrs));
    run_shell(&build_layer);
    let (explicit_first, explicit_again) =
        (stream(1, &[layer_out.as_path()]), stream(2, &[layer_out.as_path()]));
    let (auto_first, auto_again) = (stream(1, &[]), stream(2, &[]));
    let (mut first, mut again, mut auto1, mut auto2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut push1, mut push2, mut auto_push1, mut auto_push2) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let cache = dir.join("push-cache");
    // what reading and hashing the closure costs: a rebuild's cost when the plan hashed layers
    let list = dir.join("paths");
    fs::write(
        &list,
        with_app(&apps[1]).iter().map(|p| p.path.trim_start_matches('/')).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let hash_closure = format!("tar -C / -cf - -T {} | openssl dgst -sha256 >/dev/null", list.display());
    let mut hashed = Vec::new();
    for _ in 0..RUNS {
        first.push(run_shell(&build_layer) + run_shell(&builder(stowage, "build-stream", &explicit_first.0)));
        again.push(run_shell(&builder(stowage, "build-stream", &explicit_again.0)));
        auto1.push(run_shell(&builder(stowage, "build-stream", &auto_first.0)));
        auto2.push(run_shell(&builder(stowage, "build-stream", &auto_again.0)));
        // the first image's push to a new registry, with a new cache, then the rebuilt one's
        let push_both = |first: &Path, again: &Path| {
            let registry = Registry::start();
            let _ = fs::remove_dir_all(&cache);
            let push = |stream: &Path| {
                format!(
                    "XDG_CACHE_HOME={} {stowage} push {} docker://{}/bench/{name}:1 2>/dev/null",
                    cache.display(),
                    stream.display(),
                    registry.address()
                )
            };
            (run_shell(&push(first)), run_shell(&push(again)))
        };
        let (one, two) = push_both(&explicit_first.1, &explicit_again.1);
        push1.push(one);
        push2.push(two);
        let (one, two) = push_both(&auto_first.1, &auto_again.1);
        auto_push1.push(one);
        auto_push2.push(two);
        hashed.push(run_shell(&hash_closure));
    }
    let (first, again, auto1, auto2) = (median(first), median(again), median(auto1), median(auto2));
    let (push1, push2, auto_push1, auto_push2) =
        (median(push1), median(push2), median(auto_push1), median(auto_push2));
    let hashed = median(hashed);
    rows.push(timed_row(
        format!("{name}: `.stream` rebuild after the application changed ÷ the first build (its closure in a `buildLayer` layer)"),
        (again, first),
        "≤ 0.05",
    ));
    rows.push(timed_row(
        format!("{name}: … rebuild and push ÷ first build and push (gz, a registry holding the first image)"),
        (again + push2, first + push1),
        "≤ 0.1",
    ));
    rows.push(timed_row(
        format!("{name}: `.stream` rebuild ÷ the first build, every layer the image's own (no `buildLayer`)"),
        (auto2, auto1),
        "",
    ));
    rows.push(timed_row(
        format!("{name}: … that rebuild ÷ reading and hashing the closure (`tar \\| openssl dgst -sha256`)"),
        (auto2, hashed),
        "≤ 0.05",
    ));
    rows.push(timed_row(
        format!("{name}: … that rebuild and its push ÷ the first build and its push (gz, no `buildLayer`)"),
        (auto2 + auto_push2, auto1 + auto_push1),
        "≤ 0.1",
    ));
}

/// A generated store (once, under `root`): `count` paths of one file of `bytes` each (one
/// eighth random, as the synthetic store's), referring to each other as a DAG.
fn uniform_store(root: &Path, name: &'static str, count: usize, bytes: u64) -> DataSet {
    let (store, fresh) = store_to_generate(root, name);
    let (mut rng, mut data) = (Rng(SEED ^ count as u64), Rng(!SEED ^ count as u64));
    let mut block = vec![0u8; (bytes as usize).min(1 << 20)];
    let mut closure: Vec<PathInfo> = Vec::with_capacity(count);
    for i in 0..count {
        let path = store.join(store_name(&format!("p{i}"), &mut rng));
        if fresh {
            fs::create_dir(&path).unwrap();
            write_generated(&path.join("f"), bytes, &mut block, &mut data);
        }
        let references = references(i, &closure, &mut rng);
        closure.push(PathInfo {
            path: path.to_string_lossy().into_owned(),
            nar_size: bytes + 200,
            references,
        });
    }
    if fresh {
        fs::write(root.join(COMPLETE), "").unwrap();
    }
    DataSet { name, store, closure, files: count }
}

/// Peak memory at scale, for a closure of 20,000 paths and one of 10 GB: the plan's build, the
/// stream, and the gz archive's build.
fn scale(stowage: &str, root: &Path, work: &Path, rows: &mut Vec<Row>) -> Vec<DataSet> {
    let sets = [
        uniform_store(&root.join("many"), "20,000 paths", 20_000, 1 << 10),
        uniform_store(&root.join("huge"), "10 GB", 40, 250 << 20),
    ];
    for (i, set) in sets.iter().enumerate() {
        let name = set.name;
        eprintln!("bench ({name}): peak memory");
        let dir = work.join(format!("scale{i}"));
        fs::create_dir_all(&dir).unwrap();
        let stream = dir.join("stream");
        let plan = builder(stowage, "build-stream", &attrs(&dir, set, &set.closure, &stream, None));
        let (start, plan_peak) = (Instant::now(), peak_mib(&plan, "", &dir));
        let planned = start.elapsed();
        let stream_peak =
            peak_mib(&format!("{stowage} stream {}", stream.display()), "2>/dev/null | cat >/dev/null", &dir);
        let archive = dir.join("archive.gz");
        let archive_attrs = write_attrs(
            &dir,
            &archive,
            serde_json::json!({ "stream": stream, "compressor": "gz", "outputs": { "out": archive } }),
        );
        let archive_peak = peak_mib(&builder(stowage, "build-archive", &archive_attrs), "", &dir);
        let _ = fs::remove_file(&archive);
        rows.push(Row {
            measure: format!(
                "{name}: peak memory of the plan's build ({}); the stream; the gz archive's build",
                secs(planned)
            ),
            ours: format!("{plan_peak} MiB; {stream_peak} MiB; {archive_peak} MiB"),
            baseline: String::new(),
            ratio: String::new(),
            target: "bounded: ≤ 64 MiB stream, ≤ 96 MiB archive",
        });
    }
    sets.into()
}

/// The synthetic store's images on a base archive of the whole store, and merges of 1, 4 and
/// 16 of them: times that should follow the distinct layers, not the number of images.
fn base_images(stowage: &str, set: &DataSet, work: &Path, rows: &mut Vec<Row>) {
    let dir = work.join("bases");
    fs::create_dir_all(&dir).unwrap();
    let stream = work.join(set.name).join("stream");
    let list = work.join(set.name).join("paths");
    let base = dir.join("base.tar");
    run_shell(&format!("{stowage} stream {} 2>/dev/null > {}", stream.display(), base.display()));
    let mut small: Vec<&PathInfo> = set.closure.iter().collect();
    small.sort_by_key(|p| p.nar_size);
    let derived = |i: usize| -> PathBuf {
        let out = dir.join(format!("derived-{i}"));
        let own = PathInfo { references: vec![], ..small[i].clone() };
        run_builder(stowage, "build-stream", &attrs(&dir, set, &[own], &out, Some(&base)));
        out
    };
    eprintln!("bench: an image on a base of the whole synthetic store");
    let on_base = derived(0);
    let timed = pair(
        &format!("{stowage} stream {} 2>/dev/null | cat >/dev/null", on_base.display()),
        &format!("tar -C / -cf - -T {} | cat >/dev/null", list.display()),
    );
    rows.push(timed_row(
        format!(
            "{}: image on a {:.2} GB base archive: stream `\\| cat` ÷ `tar \\| cat`",
            set.name,
            size(&base) as f64 / 1e9
        ),
        timed,
        "≤ 1.3",
    ));
    let plan = builder(stowage, "build-stream", &dir.join("derived-0.attrs.json"));
    let timed = pair(&plan, &format!("openssl dgst -sha256 {} >/dev/null", base.display()));
    rows.push(timed_row(
        format!("{}: that image's plan (verifies the base) ÷ `openssl dgst -sha256` of the base", set.name),
        timed,
        "",
    ));

    eprintln!("bench: merging 1, 4 and 16 images on that base");
    let streams: Vec<PathBuf> = (0..16).map(derived).collect();
    let mut first = None;
    for n in [1, 4, 16] {
        let out = dir.join(format!("merged-{n}"));
        let images: Vec<_> = streams[..n].iter().collect();
        let attrs = write_attrs(&dir, &out, merge_attrs(&dir, &images, &out));
        run_builder(stowage, "build-merge-stream", &attrs);
        let time = time_shell(&format!("{stowage} stream {} 2>/dev/null | cat >/dev/null", out.display()));
        let bytes = Command::new("bash")
            .args(["-c", &format!("{stowage} stream {} 2>/dev/null | wc -c", out.display())])
            .output()
            .unwrap();
        let bytes: u64 = String::from_utf8_lossy(&bytes.stdout).trim().parse().unwrap();
        let plan: serde_json::Value =
            serde_json::from_str(fs::read_to_string(&out).unwrap().split_once('\n').unwrap().1).unwrap();
        let distinct: std::collections::BTreeSet<&str> = plan["images"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|i| i["layers"].as_array().unwrap())
            .map(|l| l["digest"].as_str().or(l["inputs"].as_str()).unwrap())
            .collect();
        let (time_1, bytes_1) = *first.get_or_insert((time, bytes));
        rows.push(Row {
            measure: format!(
                "{}: merge of {n} image(s) on that base ({} distinct layers): stream `\\| cat`, size",
                set.name,
                distinct.len()
            ),
            ours: format!("{} ({:.3} GB)", secs(time), bytes as f64 / 1e9),
            baseline: String::new(),
            ratio: format!(
                "×{:.2} time, ×{:.3} size of 1 image",
                time.as_secs_f64() / time_1.as_secs_f64(),
                bytes as f64 / bytes_1 as f64
            ),
            target: "grows with distinct layers",
        });
    }
    let _ = fs::remove_file(&base);
}

/// Planning alone, for a graph of 10,000 paths.
fn planning(rows: &mut Vec<Row>) {
    let mut rng = Rng(SEED);
    let big: Vec<PathInfo> = (0..10_000)
        .map(|i| PathInfo {
            path: format!("/store/{}", store_name(&format!("pkg{i}"), &mut rng)),
            nar_size: file_size(&mut rng),
            references: (0..rng.below(6).min(i as u64))
                .map(|_| format!("/store/p{}", rng.below(i as u64)))
                .collect(),
        })
        .collect();
    let time = median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(plan_layers(&big, 99));
                start.elapsed()
            })
            .collect(),
    );
    rows.push(Row {
        measure: "planning a 10,000-path graph".into(),
        ours: format!("{:.1} ms", time.as_secs_f64() * 1e3),
        baseline: String::new(),
        ratio: String::new(),
        target: "≤ 200 ms",
    });
}

/// `buildLayeredImage` as a user runs it — `nix-build`: evaluation, the plan, the gz archive —
/// of `set`'s files (copied into one store path of a throw-away Nix store), in library mode ÷
/// with the plugin. Both modes make the same derivations, so each run first deletes the image's
/// outputs (in both, alike) to build them again.
fn library_mode(set: &DataSet, work: &Path, rows: &mut Vec<Row>) {
    let (Some(plugin), Some(builder)) =
        (std::env::var_os("STOWAGE_PLUGIN"), std::env::var_os("STOWAGE_BUILDER"))
    else {
        eprintln!("bench: library mode skipped: STOWAGE_PLUGIN and STOWAGE_BUILDER name no plugin and builder (run `make bench`)");
        return;
    };
    eprintln!("bench: nix-build of an image of the {} files, in library mode and with the plugin", set.name);
    let bin = PathBuf::from(std::env::var_os("STOWAGE_NIX_BIN").unwrap_or_else(|| "/usr/bin".into()));
    let dir = work.join("nix");
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::write(dir.join("etc/nix.conf"), "substituters =\nbuild-users-group =\nsandbox = false\n").unwrap();
    let env = format!(
        "NIX_STORE_DIR={0}/store NIX_STATE_DIR={0}/state NIX_LOG_DIR={0}/log NIX_CONF_DIR={0}/etc \
         NIX_USER_CONF_FILES={0}/etc/none HOME={0} NIX_PATH=",
        dir.display()
    );
    let image = dir.join("image.nix");
    fs::write(
        &image,
        format!(
            r#"{{ stowage }}: stowage.buildLayeredImage {{
                 name = "bench"; tag = "1";
                 contents = [ (derivation {{ name = "files"; system = builtins.currentSystem; builder = "/bin/sh";
                                             args = [ "-c" "/bin/cp -r {} $out" ]; }}) ];
               }}"#,
            set.store.display()
        ),
    )
    .unwrap();
    let plugin_mode = format!(
        "{env} {}/nix-build --option plugin-files {} --arg stowage builtins.stowage",
        bin.display(),
        Path::new(&plugin).display()
    );
    let library = format!(
        "{env} {}/nix-build --arg stowage '(import {}/nix {{ builder = {}; }})'",
        bin.display(),
        env!("CARGO_MANIFEST_DIR"),
        Path::new(&builder).display()
    );
    let build = |mode: &str| format!("{mode} --no-out-link {}", image.display());
    let first = Command::new("bash").args(["-c", &build(&plugin_mode)]).output().unwrap();
    let archive = String::from_utf8(first.stdout).unwrap();
    let archive = archive.trim();
    assert!(
        archive.ends_with("-bench.tar.gz"),
        "the image did not build: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let paths = String::from_utf8(
        Command::new("bash")
            .args([
                "-c",
                &format!(
                    "{env} {}/nix-store -q --references $({env} {}/nix-store -q --deriver {archive})",
                    bin.display(),
                    bin.display()
                ),
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(paths.contains("-stream-bench.drv"), "{paths}");
    // the archive and the stream (the plan), deleted before every build
    let stream = format!(
        "$({env} {}/nix-store -q --outputs {})",
        bin.display(),
        paths.lines().find(|p| p.ends_with("-stream-bench.drv")).unwrap()
    );
    let again = |mode: &str| {
        format!(
            "{env} {}/nix-store --delete {archive} {stream} >/dev/null 2>&1; {} >/dev/null 2>&1",
            bin.display(),
            build(mode)
        )
    };
    rows.push(timed_row(
        format!("nix-build of buildLayeredImage (gz, {} files), library mode ÷ plugin", set.name),
        pair(&again(&library), &again(&plugin_mode)),
        "≈ 1 (the same builder)",
    ));
}

fn main() {
    let stowage = env!("CARGO_BIN_EXE_stowage");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-store");
    let sets = [synthetic_store(&root.join("synthetic")), real_store(&root.join("real"))];
    let work = tempfile::Builder::new().prefix("stowage-bench-").tempdir_in(&root).unwrap();
    let mut rows = Vec::new();
    // `STOWAGE_BENCH=push` (`make bench STOWAGE_BENCH=push`) measures the pushes alone,
    // `STOWAGE_BENCH=library` library mode alone, `STOWAGE_BENCH=rebuild` the rebuilds alone, `STOWAGE_BENCH=scale` the
    // peak memory at scale alone.
    let only = std::env::var("STOWAGE_BENCH").ok();
    let pushes_only = only.as_deref() == Some("push");
    if only.as_deref() == Some("library") {
        library_mode(&sets[1], work.path(), &mut rows);
    }
    let mut extra = Vec::new();
    if only.is_none() || only.as_deref() == Some("rebuild") {
        let large = large_store(&sets[0]);
        rebuilds(stowage, &large, work.path(), &mut rows);
        extra.push(large);
        rebuilds(stowage, &sets[1], work.path(), &mut rows);
    }
    if only.is_none() || only.as_deref() == Some("scale") {
        extra.extend(scale(stowage, &root, work.path(), &mut rows));
    }
    for set in sets.iter().filter(|_| !matches!(only.as_deref(), Some("library" | "rebuild" | "scale"))) {
        if pushes_only {
            let dir = work.path().join(set.name);
            fs::create_dir_all(&dir).unwrap();
            let stream = dir.join("stream");
            run_builder(stowage, "build-stream", &attrs(&dir, set, &set.closure, &stream, None));
        } else {
            measure(stowage, set, work.path(), &mut rows);
        }
        pushes(stowage, set, work.path(), &mut rows);
    }
    if only.is_none() {
        base_images(stowage, &sets[0], work.path(), &mut rows);
        planning(&mut rows);
        library_mode(&sets[1], work.path(), &mut rows);
    }

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("## stowage benchmark (medians of {RUNS} runs, {cores} cores)\n");
    for set in sets.iter().chain(&extra) {
        println!(
            "- {}: {} paths, {} files, {:.2} GB",
            set.name,
            set.closure.len(),
            set.files,
            set.bytes() as f64 / 1e9
        );
    }
    println!("\n| measure | stowage | baseline | ratio | target |");
    println!("|---|---|---|---|---|");
    for row in rows {
        println!("| {} | {} | {} | {} | {} |", row.measure, row.ours, row.baseline, row.ratio, row.target);
    }
}
