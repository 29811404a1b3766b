//! Interop with Python's `safetensors` (the format's reference reader and
//! writer): files we write are read back by Python bit for bit, and files
//! Python writes (bf16 through `ml_dtypes`) are read by us identically.
//!
//! Python comes from QKLAB_PYTHON (else `python3`) with safetensors, numpy
//! and ml_dtypes (tests/requirements.txt). Without them the tests skip,
//! unless QKLAB_REQUIRE_PYTHON=1 (set by `cargo xtask test`).

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use common::python;
use qklab::checkpoint::Checkpoint;
use qklab::safetensors::{decode_f32, encode_header, Dtype, TensorInfo};
use qklab::source::{block_on, FsSource, MemSource};
use qklab::writer::{
    write_to_dir, PlanBuilder, Provenance, SourceFingerprint, TensorData, PROVENANCE_KEY,
};

fn run_python(py: &str, script: &str, args: &[&str]) -> String {
    let out = Command::new(py)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Deterministic bytes of a given length.
fn bytes(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

const READ_SCRIPT: &str = r#"
import json, sys
from safetensors import safe_open
import ml_dtypes  # registers bfloat16 with numpy
out = {"tensors": {}}
with safe_open(sys.argv[1], framework="numpy") as f:
    out["metadata"] = f.metadata()
    for k in f.keys():
        a = f.get_tensor(k)
        out["tensors"][k] = {"dtype": str(a.dtype), "shape": list(a.shape), "hex": a.tobytes().hex()}
print(json.dumps(out))
"#;

#[test]
fn python_reads_what_we_write_bit_for_bit() {
    let Some(py) = python() else { return };
    // Every dtype a checkpoint may carry, a scalar and an empty tensor.
    let specs: Vec<(&str, Dtype, Vec<u64>)> = vec![
        ("w.bf16", Dtype::BF16, vec![3, 5]),
        ("w.f16", Dtype::F16, vec![7]),
        ("w.f32", Dtype::F32, vec![2, 3]),
        ("scalar", Dtype::F32, vec![]),
        ("empty", Dtype::F32, vec![0, 4]),
        ("ids.i64", Dtype::I64, vec![4]),
        ("mask.u8", Dtype::U8, vec![5]),
        ("flags.bool", Dtype::Bool, vec![3]),
    ];
    let mut infos = Vec::new();
    let mut data = Vec::new();
    for (i, (name, dtype, shape)) in specs.iter().enumerate() {
        let len = qklab::safetensors::byte_len(*dtype, shape).unwrap() as usize;
        let mut b = bytes(len, i as u8);
        if *dtype == Dtype::Bool {
            b.iter_mut().for_each(|x| *x &= 1);
        }
        infos.push(TensorInfo {
            name: name.to_string(),
            dtype: *dtype,
            shape: shape.clone(),
            begin: data.len() as u64,
            end: (data.len() + len) as u64,
        });
        data.extend_from_slice(&b);
    }
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let mut file = encode_header(&infos, &meta);
    file.extend_from_slice(&data);
    let ckpt = block_on(Checkpoint::open(
        MemSource::new().with("model.safetensors", file),
    ))
    .unwrap();

    // One tensor recomputed, the rest copied as byte ranges.
    let new_bf16 = bytes(30, 200);
    let mut plan = PlanBuilder::new(&ckpt, 0);
    plan.replace("w.bf16", TensorData::Bytes(Arc::new(new_bf16.clone())))
        .unwrap();
    let prov = Provenance::new(
        "test",
        serde_json::json!({"alpha": 1.0}),
        vec![block_on(SourceFingerprint::of("sft", &ckpt)).unwrap()],
    );
    let plan = plan.build(&prov).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    block_on(write_to_dir(&plan, &[ckpt.source()], &out, |_, _| {})).unwrap();

    let path = out.join("model.safetensors");
    let seen: serde_json::Value =
        serde_json::from_str(&run_python(&py, READ_SCRIPT, &[path.to_str().unwrap()])).unwrap();
    let numpy_dtype = |d: Dtype| match d {
        Dtype::BF16 => "bfloat16",
        Dtype::F16 => "float16",
        Dtype::F32 => "float32",
        Dtype::I64 => "int64",
        Dtype::U8 => "uint8",
        Dtype::Bool => "bool",
        _ => unreachable!(),
    };
    let tensors = seen["tensors"].as_object().unwrap();
    assert_eq!(tensors.len(), specs.len());
    for t in &infos {
        let want = if t.name == "w.bf16" {
            new_bf16.clone()
        } else {
            data[t.begin as usize..t.end as usize].to_vec()
        };
        let got = &tensors[&t.name];
        assert_eq!(got["hex"], hex(&want), "{}", t.name);
        assert_eq!(got["dtype"], numpy_dtype(t.dtype), "{}", t.name);
        assert_eq!(got["shape"], serde_json::json!(t.shape), "{}", t.name);
    }
    assert_eq!(seen["metadata"]["format"], "pt", "source metadata is kept");
    let recorded: serde_json::Value =
        serde_json::from_str(seen["metadata"][PROVENANCE_KEY].as_str().unwrap()).unwrap();
    assert_eq!(recorded["method"], "test");
    assert_eq!(
        recorded["sources"][0]["files"][0]["name"],
        "model.safetensors"
    );
    assert_eq!(
        recorded["sources"][0]["files"][0]["header_sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
}

const WRITE_SCRIPT: &str = r#"
import json, sys
import numpy as np, ml_dtypes
from safetensors.numpy import save_file
rng = np.random.default_rng(7)
special = np.array([0.0, -0.0, 1e-40, -3e-39, 65504.0, 3.0e38, np.inf, -np.inf, 1/3, -2.5], dtype=np.float32)
tensors = {
    "model.embed_tokens.weight": rng.standard_normal((17, 12)).astype(np.float32).astype(ml_dtypes.bfloat16),
    "special.bf16": special.astype(ml_dtypes.bfloat16),
    "special.f16": special.astype(np.float16),
    "x.f32": rng.standard_normal((5, 3)).astype(np.float32),
    "x.i32": np.arange(-3, 4, dtype=np.int32),
    "nan.bf16": np.array([np.nan, 1.0], dtype=np.float32).astype(ml_dtypes.bfloat16),
}
save_file(tensors, sys.argv[1], metadata={"format": "pt", "note": "written by numpy"})
expect = {}
for k, a in tensors.items():
    e = {"dtype": str(a.dtype), "shape": list(a.shape), "raw": a.tobytes().hex()}
    if a.dtype.kind == "f" or a.dtype == ml_dtypes.bfloat16:
        e["f32"] = a.astype(np.float32).tobytes().hex()
    expect[k] = e
print(json.dumps(expect))
"#;

#[test]
fn we_read_what_python_writes_identically() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("py.safetensors");
    let expect: serde_json::Value =
        serde_json::from_str(&run_python(&py, WRITE_SCRIPT, &[path.to_str().unwrap()])).unwrap();
    let ckpt = block_on(Checkpoint::open(FsSource::open(&path).unwrap())).unwrap();
    assert_eq!(ckpt.shards[0].header.metadata["note"], "written by numpy");
    let expect = expect.as_object().unwrap();
    assert_eq!(ckpt.tensors.len(), expect.len());
    for (name, e) in expect {
        let t = ckpt
            .tensor(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(serde_json::json!(t.shape), e["shape"], "{name}");
        let raw = block_on(ckpt.read_tensor_bytes(name)).unwrap();
        assert_eq!(hex(&raw), e["raw"].as_str().unwrap(), "{name}: raw bytes");
        if let Some(f32_hex) = e.get("f32") {
            let values = decode_f32(name, t.dtype, &raw, "test").unwrap();
            let ours: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            if name.starts_with("nan") {
                assert!(values[0].is_nan() && values[1] == 1.0, "{name}: {values:?}");
            } else {
                assert_eq!(
                    hex(&ours),
                    f32_hex.as_str().unwrap(),
                    "{name}: decoded to f32"
                );
            }
        }
    }
    // And the NaN is caught by the value check, naming the tensor.
    let err = block_on(ckpt.check_values(|_, _| {}))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nan.bf16") && err.contains("1 non-finite"),
        "{err}"
    );
}
