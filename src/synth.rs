//! HypeNet-shaped checkpoints with random weights, for tests and benchmarks:
//! from a tiny model that fits in a test to a HypeNet-2B-shaped one whose
//! data can be left sparse (headers only, zero bytes) to test what reading
//! a 4 GB checkpoint costs without writing 4 GB.

use std::collections::BTreeMap;

use crate::config::Arch;
use crate::error::{Error, Result};
use crate::safetensors::{byte_len, encode_f32, encode_header, Dtype, TensorInfo};

/// Deterministic on every platform (unlike `rand`'s generators, whose
/// streams may change between versions): SplitMix64.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn next_signed(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// The Qwen3.5-0.8B-shaped preset's name.
pub const QWEN35_08B: &str = "qwen3.5-0.8b";

/// The Jet-Nemotron-2B-shaped preset's name.
pub const JET_2B: &str = "jet-nemotron-2b";

/// The built-in shapes, by name.
pub const PRESETS: [&str; 5] = ["tiny", "demo", "2b", QWEN35_08B, JET_2B];

/// A config.json for one of the built-in shapes.
pub fn preset_config(preset: &str) -> Result<serde_json::Value> {
    let base = |vocab: u64,
                d: u64,
                i: u64,
                mixers: Vec<&str>,
                h: u64,
                hkv: u64,
                dh: u64,
                lnh: u64,
                ldh: u64| {
        serde_json::json!({
            "model_type": "hypenet",
            "architectures": ["HypeNetForCausalLM"],
            "vocab_size": vocab, "hidden_size": d, "intermediate_size": i,
            "num_hidden_layers": mixers.len(), "mixer_types": mixers,
            "num_attention_heads": h, "num_key_value_heads": hkv, "head_dim": dh,
            "lightning_nh": lnh, "lightning_nkv": lnh, "lightning_head_dim": ldh,
            "rms_norm_eps": 1e-6, "rope_theta": 1e6, "rope_scaling": null,
            "attn_use_rope": false, "lightning_use_rope": true, "attn_use_output_gate": true,
            "attn_logits_scaling": null,
            "lightning_use_qk_norm": true, "lightning_use_output_norm": true, "lightning_use_output_gate": true,
            "lightning_scale": "1/sqrt(d)", "lightning_use_short_conv": false,
            "attention_bias": false, "tie_word_embeddings": true,
            // The byte-level demo tokenizer's specials follow the 256 bytes.
            "bos_token_id": 256, "eos_token_id": 257, "pad_token_id": 258, "torch_dtype": "bfloat16"
        })
    };
    let mixers = |n: usize, softmax: &[usize]| -> Vec<&'static str> {
        (0..n)
            .map(|i| {
                if softmax.contains(&i) {
                    "attn"
                } else {
                    "lightning-attn"
                }
            })
            .collect()
    };
    Ok(match preset {
        // Awkward on purpose: sizes that are not multiples of GPU tile sizes.
        "tiny" => base(259, 40, 72, mixers(4, &[1, 3]), 4, 2, 10, 2, 20),
        "demo" => base(259, 192, 512, mixers(8, &[3, 6]), 4, 2, 48, 4, 48),
        // HypeNet-2B's shapes; its attn layers as SPEC-hypenet lists them.
        "2b" => base(
            151936,
            2048,
            6144,
            mixers(28, &[2, 3, 6, 8, 9, 21, 25]),
            16,
            8,
            128,
            16,
            128,
        ),
        // Qwen3.5-0.8B's text model: the sizes of its published config.json
        // (Qwen/Qwen3.5-0.8B on the Hugging Face Hub, as mirrored in public
        // code that loads it): 24 layers, every fourth softmax.
        QWEN35_08B => serde_json::json!({
            "model_type": "qwen3_5_text",
            "architectures": ["Qwen3_5ForCausalLM"],
            "vocab_size": 248320, "hidden_size": 1024, "intermediate_size": 3584,
            "num_hidden_layers": 24, "full_attention_interval": 4,
            "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 256,
            "linear_num_key_heads": 16, "linear_num_value_heads": 16,
            "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4,
            "rms_norm_eps": 1e-6, "hidden_act": "silu", "attention_bias": false,
            "rope_parameters": { "rope_type": "default", "rope_theta": 1e7, "partial_rotary_factor": 0.25 },
            "tie_word_embeddings": true, "eos_token_id": 248044, "torch_dtype": "bfloat16"
        }),
        // Jet-Nemotron-2B: the sizes of NVlabs' published config
        // (jetai/modeling/configs/jetlm_2B.json in NVlabs/Jet-Nemotron).
        JET_2B => {
            let mut layer_types = vec!["jet"; 28];
            for l in [14, 19] {
                layer_types[l] = "attn";
            }
            for l in [20, 21] {
                layer_types[l] = "swa";
            }
            serde_json::json!({
                "model_type": "jet_nemotron",
                "architectures": ["JetNemotronForCausalLM"],
                "vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960,
                "num_hidden_layers": 28, "layer_types": layer_types,
                "num_attention_heads": 12, "num_key_value_heads": 2,
                "efficient_attention_config": {
                    "jet": { "conv_size": 4, "dconv_generator_reduction": 8, "dconv_implementation": "triton",
                             "expand_v": 2.6666666667, "head_dim": 96, "mode": "chunk", "norm_eps": "1e-5",
                             "num_heads": 12 },
                    "swa": { "window_size": 1152 }
                },
                "rms_norm_eps": 1e-6, "hidden_act": "silu", "rope_theta": 1e6, "rope_scaling": null,
                "tie_word_embeddings": true, "bos_token_id": 151643, "eos_token_id": 151643,
                "torch_dtype": "bfloat16"
            })
        }
        other => {
            return Err(Error::Usage(format!(
                "unknown preset {other:?}: expected one of {}",
                PRESETS.join(", ")
            )))
        }
    })
}

/// One file of a synthetic checkpoint: its header bytes and tensor layout.
#[derive(Debug, Clone)]
pub struct SynthShard {
    pub name: String,
    pub header: Vec<u8>,
    pub tensors: Vec<TensorInfo>,
}

impl SynthShard {
    pub fn size(&self) -> u64 {
        self.header.len() as u64 + self.tensors.last().map_or(0, |t| t.end)
    }
}

/// The layout of a synthetic checkpoint: every tensor of `arch`, split into
/// `shards` files of roughly equal size, Hugging Face names.
#[derive(Debug, Clone)]
pub struct SynthLayout {
    pub shards: Vec<SynthShard>,
    /// `model.safetensors.index.json` text, when there are several shards.
    pub index_json: Option<String>,
}

pub fn layout(arch: &Arch, shards: usize, dtype: Dtype) -> Result<SynthLayout> {
    let shards = shards.max(1);
    let tensors = arch.expected_tensors();
    let sizes: Vec<u64> = tensors
        .iter()
        .map(|(n, s)| {
            byte_len(dtype, s).ok_or_else(|| Error::Usage(format!("{n}: size overflows")))
        })
        .collect::<Result<_>>()?;
    let total: u64 = sizes.iter().sum();
    let target = total.div_ceil(shards as u64);
    let mut groups: Vec<Vec<TensorInfo>> = vec![Vec::new(); shards];
    let (mut g, mut offset) = (0usize, 0u64);
    for ((name, shape), len) in tensors.into_iter().zip(sizes) {
        if offset >= target && g + 1 < shards {
            g += 1;
            offset = 0;
        }
        groups[g].push(TensorInfo {
            name,
            dtype,
            shape,
            begin: offset,
            end: offset + len,
        });
        offset += len;
    }
    let names: Vec<String> = if shards == 1 {
        vec!["model.safetensors".into()]
    } else {
        (1..=shards)
            .map(|i| format!("model-{i:05}-of-{shards:05}.safetensors"))
            .collect()
    };
    let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let mut weight_map = BTreeMap::new();
    let mut out = Vec::new();
    for (name, tensors) in names.into_iter().zip(groups) {
        for t in &tensors {
            weight_map.insert(t.name.clone(), name.clone());
        }
        let header = encode_header(&tensors, &metadata);
        out.push(SynthShard {
            name,
            header,
            tensors,
        });
    }
    let index_json = (shards > 1).then(|| {
        serde_json::to_string_pretty(&serde_json::json!({
            "metadata": { "total_size": total },
            "weight_map": weight_map,
        }))
        .expect("index serializes")
    });
    Ok(SynthLayout {
        shards: out,
        index_json,
    })
}

/// Random values for one tensor: norm weights near 1, others small and
/// centred, seeded by the tensor name so that shards can be made in any order.
pub fn tensor_values(t: &TensorInfo, seed: u64) -> Vec<f32> {
    let name_hash = t.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = SplitMix64::new(seed ^ name_hash);
    let n = t.numel() as usize;
    let is_norm = t.name.ends_with("norm.weight");
    let fan_in = *t.shape.last().unwrap_or(&1) as f32;
    let scale = if is_norm { 0.1 } else { 1.0 / fan_in.sqrt() };
    (0..n)
        .map(|_| if is_norm { 1.0 } else { 0.0 } + scale * rng.next_signed())
        .collect()
}

/// The bytes of a tensor in the layout's dtype.
pub fn tensor_bytes(t: &TensorInfo, seed: u64) -> Result<Vec<u8>> {
    encode_f32(&t.name, t.dtype, &tensor_values(t, seed), "synthesis")
}

/// Every file of a small synthetic checkpoint in memory (name, bytes),
/// config.json included.
pub fn files_in_memory(
    preset: &str,
    shards: usize,
    dtype: Dtype,
    seed: u64,
) -> Result<Vec<(String, Vec<u8>)>> {
    files_for_config(&preset_config(preset)?, shards, dtype, seed)
}

/// Every file of a synthetic checkpoint of any config in memory.
pub fn files_for_config(
    config: &serde_json::Value,
    shards: usize,
    dtype: Dtype,
    seed: u64,
) -> Result<Vec<(String, Vec<u8>)>> {
    let arch = Arch::from_config_json(&config.to_string(), false)?;
    let lay = layout(&arch, shards, dtype)?;
    let mut files = vec![(
        "config.json".to_string(),
        serde_json::to_vec_pretty(config).expect("json"),
    )];
    for s in &lay.shards {
        let mut bytes = s.header.clone();
        for t in &s.tensors {
            bytes.extend_from_slice(&tensor_bytes(t, seed)?);
        }
        files.push((s.name.clone(), bytes));
    }
    if let Some(index) = lay.index_json {
        files.push((
            crate::checkpoint::INDEX_FILE.to_string(),
            index.into_bytes(),
        ));
    }
    Ok(files)
}

/// Writes a synthetic checkpoint folder. With `sparse`, tensor data is not
/// written: each shard is its header followed by a hole of zero bytes.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_dir(
    dir: &std::path::Path,
    preset: &str,
    shards: usize,
    dtype: Dtype,
    seed: u64,
    sparse: bool,
) -> Result<SynthLayout> {
    use std::io::Write;
    let config = preset_config(preset)?;
    let arch = Arch::from_config_json(&config.to_string(), false)?;
    let lay = layout(&arch, shards, dtype)?;
    let io = |e: std::io::Error| Error::io(dir.display(), e);
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&config).expect("json"),
    )
    .map_err(io)?;
    for s in &lay.shards {
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join(&s.name)).map_err(io)?);
        f.write_all(&s.header).map_err(io)?;
        if !sparse {
            for t in &s.tensors {
                f.write_all(&tensor_bytes(t, seed)?).map_err(io)?;
            }
        }
        let f = f.into_inner().map_err(|e| io(e.into_error()))?;
        f.set_len(s.size()).map_err(io)?;
    }
    if let Some(index) = &lay.index_json {
        std::fs::write(dir.join(crate::checkpoint::INDEX_FILE), index).map_err(io)?;
    }
    Ok(lay)
}

/// A synthetic checkpoint whose tensor bytes are made when read, so a
/// HypeNet-2B-shaped model (4 GB) can be benchmarked with no file and no
/// 4 GB buffer. Values depend only on (seed, tensor, element): norm weights
/// near 1, the rest uniform in ±1/sqrt(fan_in).
pub struct SynthSource {
    files: Vec<crate::source::FileInfo>,
    config: Vec<u8>,
    shard: SynthShard,
    seed: u64,
}

impl SynthSource {
    pub fn new(preset: &str, dtype: Dtype, seed: u64) -> Result<SynthSource> {
        let config = preset_config(preset)?;
        let arch = Arch::from_config_json(&config.to_string(), false)?;
        let shard = layout(&arch, 1, dtype)?.shards.remove(0);
        let config = serde_json::to_vec_pretty(&config).expect("json");
        let files = vec![
            crate::source::FileInfo {
                name: "config.json".into(),
                size: config.len() as u64,
            },
            crate::source::FileInfo {
                name: shard.name.clone(),
                size: shard.size(),
            },
        ];
        Ok(SynthSource {
            files,
            config,
            shard,
            seed,
        })
    }

    fn value(&self, t: &TensorInfo, name_hash: u64, element: u64) -> f32 {
        let u =
            SplitMix64::new(self.seed ^ name_hash ^ element.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .next_signed();
        if t.name.ends_with("norm.weight") {
            1.0 + 0.1 * u
        } else {
            u / (*t.shape.last().unwrap_or(&1) as f32).sqrt()
        }
    }

    /// Bytes [start, end) of the shard's data section.
    fn data(&self, start: u64, end: u64) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity((end - start) as usize);
        for t in self
            .shard
            .tensors
            .iter()
            .filter(|t| t.end > start && t.begin < end)
        {
            let size = t.dtype.bits() / 8;
            let name_hash = t.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
            });
            let (a, b) = (start.max(t.begin) - t.begin, end.min(t.end) - t.begin);
            let values: Vec<f32> = (a / size..b.div_ceil(size))
                .map(|e| self.value(t, name_hash, e))
                .collect();
            let bytes = encode_f32(&t.name, t.dtype, &values, "synthesis")?;
            let skip = (a - a / size * size) as usize;
            out.extend_from_slice(&bytes[skip..skip + (b - a) as usize]);
        }
        Ok(out)
    }
}

impl crate::source::ByteSource for SynthSource {
    fn files(&self) -> &[crate::source::FileInfo] {
        &self.files
    }

    async fn read(&self, name: &str, range: std::ops::Range<u64>) -> Result<Vec<u8>> {
        let i = crate::source::locate(&self.files, name, &range)?;
        if i == 0 {
            return Ok(self.config[range.start as usize..range.end as usize].to_vec());
        }
        let h = self.shard.header.len() as u64;
        let mut out = Vec::new();
        if range.start < h {
            out.extend_from_slice(
                &self.shard.header[range.start as usize..range.end.min(h) as usize],
            );
        }
        if range.end > h {
            out.extend(self.data(range.start.max(h) - h, range.end - h)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_resolves() {
        for preset in PRESETS {
            let config = preset_config(preset).unwrap().to_string();
            let arch =
                Arch::from_config_json(&config, false).unwrap_or_else(|e| panic!("{preset}: {e}"));
            assert!(layout(&arch, 2, Dtype::BF16).is_ok(), "{preset}");
        }
        let arch =
            Arch::from_config_json(&preset_config(QWEN35_08B).unwrap().to_string(), false).unwrap();
        assert_eq!(arch.softmax_layers(), [3, 7, 11, 15, 19, 23]);
        assert_eq!(arch.rope_dims(arch.attn.head_dim), 64);
    }
}
