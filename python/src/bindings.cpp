// causalattn._causalattn: the C API over arrays that nanobind takes from any DLPack or buffer
// protocol object (numpy, PyTorch CPU tensors) without copying them, read through their strides.
// The Python layer (python/causalattn/__init__.py) gives it flash-attn's calling conventions.
// Every call releases the GIL; a failed call raises with the library's message, outputs untouched.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "causalattn/causalattn.h"
#include "causalattn/modules.hpp"

namespace nb = nanobind;

namespace {

using In = nb::ndarray<const float, nb::device::cpu>;
using Out = nb::ndarray<float, nb::device::cpu>;
// Attention's tensors: float32, float16 or bfloat16, told apart at run time.
using AnyIn = nb::ndarray<nb::ro, nb::device::cpu>;
using AnyOut = nb::ndarray<nb::device::cpu>;
using Lengths = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using BlockTable = nb::ndarray<const int32_t, nb::ndim<2>, nb::device::cpu>;

// A failed call as a Python exception: ValueError for what the caller passed wrongly.
void check(int status) {
  if (status == CAUSALATTN_OK) return;
  const std::string message = causalattn_last_error();
  if (status == CAUSALATTN_ERROR_INTERNAL || status == CAUSALATTN_ERROR_UNSUPPORTED) throw std::runtime_error(message);
  throw nb::value_error(message.c_str());
}

// The causalattn_layout of a [batch, tokens, heads, head_dim] array (3-D: [tokens, heads,
// head_dim], one batch): head_dim must be contiguous.
causalattn_layout layout_of(const char* name, size_t ndim, const int64_t* strides, size_t expected_ndim) {
  if (ndim != expected_ndim) {
    throw nb::value_error((std::string(name) + " must have " + std::to_string(expected_ndim) + " dimensions, got " +
                           std::to_string(ndim)).c_str());
  }
  if (strides[ndim - 1] != 1) {
    throw nb::value_error((std::string(name) + ": head_dim must be contiguous (stride 1), got stride " +
                           std::to_string(strides[ndim - 1])).c_str());
  }
  if (ndim == 4) return {strides[0], strides[2], strides[1]};
  return {0, strides[1], strides[0]};
}

template <class Array>
causalattn_layout layout_of(const char* name, const Array& a, size_t ndim) {
  return layout_of(name, a.ndim(), a.stride_ptr(), ndim);
}

// The causalattn_dtype of an array: float32, float16 or bfloat16.
template <class Array>
causalattn_dtype dtype_of(const char* name, const Array& a) {
  const nb::dlpack::dtype t = a.dtype();
  if (t == nb::dtype<float>()) return CAUSALATTN_DTYPE_F32;
  if (t.lanes == 1 && t.bits == 16 && t.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Float)) {
    return CAUSALATTN_DTYPE_F16;
  }
  if (t.lanes == 1 && t.bits == 16 && t.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Bfloat)) {
    return CAUSALATTN_DTYPE_BF16;
  }
  throw nb::type_error((std::string(name) + " must be float32, float16 or bfloat16").c_str());
}

// One attend call. q, out: [B, Tq, Hq, D] (or [total_q, Hq, D] with cu_q); k, v: [B, Tk, Hkv, D]
// (or [total_k, Hkv, D] with cu_k; or pages [num_pages, page_tokens, Hkv, D] with block_table
// [B, pages per sequence]). kv_lens: None, or each sequence's keys (padded K and V, or paged).
// lse: None, or [B, Hq, Tq] ([Hq, total_q] with cu_q) contiguous.
// softcap: 0 or the cap; alibi_slopes, sinks: None or [Hq] float32 contiguous. v and out may
// have a head_dim of their own. top_left: the causal diagonal aligned top-left (PyTorch's SDPA).
void attend(AnyIn q, AnyIn k, AnyIn v, AnyOut out, std::optional<Out> lse, bool causal, float scale, int num_threads,
            int64_t window, std::optional<Lengths> cu_q, std::optional<Lengths> cu_k, float dropout_p,
            uint64_t seed, std::optional<Lengths> kv_lens, std::optional<BlockTable> block_table, float softcap,
            std::optional<In> alibi_slopes, std::optional<In> sinks, bool top_left) {
  const bool packed = cu_q.has_value();
  if (packed != cu_k.has_value()) throw nb::value_error("cu_seqlens_q and cu_seqlens_k come together");
  const size_t ndim = packed ? 3 : 4;
  causalattn_attend_args a{};
  a.q_layout = layout_of("q", q, ndim);
  a.k_layout = layout_of("k", k, ndim);
  a.v_layout = layout_of("v", v, ndim);
  a.out_layout = layout_of("out", out, ndim);
  const size_t t = ndim - 3;  // the tokens dimension
  if (k.shape(t) != v.shape(t) || k.shape(t + 1) != v.shape(t + 1) || (!packed && k.shape(0) != v.shape(0))) {
    throw nb::value_error("k and v must have the same shape but for head_dim");
  }
  for (size_t i = 0; i + 1 < ndim; ++i) {
    if (q.shape(i) != out.shape(i)) throw nb::value_error("out must have the shape of q but for head_dim");
  }
  if (out.shape(ndim - 1) != v.shape(ndim - 1)) throw nb::value_error("out must have v's head_dim");
  if (q.shape(ndim - 1) != k.shape(ndim - 1)) throw nb::value_error("q and k must have the same head_dim");
  const int64_t batch = packed ? static_cast<int64_t>(cu_q->shape(0)) - 1 : static_cast<int64_t>(q.shape(0));
  const bool paged = block_table.has_value();
  if (packed && (paged || kv_lens.has_value())) throw nb::value_error("packed sequences take no kv_lens or block_table");
  if (paged && !kv_lens.has_value()) throw nb::value_error("a block_table needs the sequences' key counts");
  if (kv_lens.has_value() && static_cast<int64_t>(kv_lens->shape(0)) != batch) {
    throw nb::value_error("cache_seqlens must have one entry per sequence");
  }
  if (paged && static_cast<int64_t>(block_table->shape(0)) != batch) {
    throw nb::value_error("block_table must have one row per sequence");
  }
  if (!packed && !paged && (kv_lens.has_value() ? k.shape(0) < q.shape(0) : k.shape(0) != q.shape(0))) {
    throw nb::value_error("q and k must have the same batch size");
  }
  if (packed && cu_k->shape(0) != cu_q->shape(0)) {
    throw nb::value_error("cu_seqlens_q and cu_seqlens_k must have the same length");
  }
  a.shape = {batch, static_cast<int64_t>(q.shape(t + 1)), static_cast<int64_t>(k.shape(t + 1)),
             static_cast<int64_t>(q.shape(t)), static_cast<int64_t>(k.shape(t)), static_cast<int64_t>(q.shape(t + 2))};
  a.q = q.data();
  a.k = k.data();
  a.v = v.data();
  a.out = out.data();
  a.q_dtype = dtype_of("q", q);
  a.k_dtype = dtype_of("k", k);
  a.v_dtype = dtype_of("v", v);
  a.out_dtype = dtype_of("out", out);
  a.options.flags = (causal ? 0u : CAUSALATTN_NON_CAUSAL) | (top_left ? CAUSALATTN_TOP_LEFT : 0u);
  a.options.scale = scale;
  a.options.num_threads = num_threads;
  if (lse.has_value()) {
    const size_t expected = packed ? static_cast<size_t>(a.shape.q_heads * a.shape.q_len)
                                   : static_cast<size_t>(batch * a.shape.q_heads * a.shape.q_len);
    bool contiguous = lse->size() == expected;
    for (size_t i = 0, stride = 1; contiguous && i < lse->ndim(); ++i) {
      const size_t d = lse->ndim() - 1 - i;
      contiguous = lse->shape(d) == 1 || lse->stride(d) == static_cast<int64_t>(stride);
      stride *= lse->shape(d);
    }
    if (!contiguous) throw nb::value_error("softmax_lse must be contiguous with one value per query row");
    a.options.lse = lse->data();
  }
  a.window = window;
  a.dropout = {dropout_p, seed};
  a.head_dim_v = static_cast<int64_t>(v.shape(ndim - 1));
  a.softcap = softcap;
  for (auto& [name, per_head, field] : {std::tuple{"alibi_slopes", &alibi_slopes, &a.alibi_slopes},
                                        std::tuple{"s_aux", &sinks, &a.sinks}}) {
    if (!per_head->has_value()) continue;
    const In& values = **per_head;
    if (values.ndim() != 1 || static_cast<int64_t>(values.shape(0)) != a.shape.q_heads || values.stride(0) != 1) {
      throw nb::value_error((std::string(name) + " must be a contiguous float32 array of one value per query head").c_str());
    }
    *field = values.data();
  }
  causalattn_seq_lens lens{};
  if (packed) {
    lens.cu_q_lens = cu_q->data();
    lens.cu_kv_lens = cu_k->data();
    a.seq_lens = &lens;
  }
  causalattn_kv_pages pages{};
  if (kv_lens.has_value()) {
    lens.kv_lens = kv_lens->data();
    a.seq_lens = &lens;
    int64_t longest = 1;
    for (int64_t b = 0; b < batch; ++b) longest = std::max(longest, kv_lens->data()[b]);
    if (paged) {
      if (block_table->stride(1) != 1) throw nb::value_error("block_table rows must be contiguous");
      pages = {block_table->data(), block_table->stride(0), static_cast<int64_t>(k.shape(1)), static_cast<int64_t>(k.shape(0))};
      a.pages = &pages;
      a.shape.kv_len = longest;  // pages are batches of page_tokens tokens; the lengths say the rest
    }
  }
  int status = 0;
  {
    nb::gil_scoped_release release;
    status = causalattn_attend(&a);
  }
  check(status);
}

// causalattn_merge_f32 over parts given as ([B, T, H, D] or [T, H, D] outputs, [B, H, T] or
// [H, T]... contiguous LSEs) as the Python layer lays them out.
void merge(std::vector<In> outs, std::vector<In> lses, Out out, std::optional<Out> lse) {
  if (outs.empty() || outs.size() != lses.size()) throw nb::value_error("merge needs as many LSEs as outputs, at least one");
  if (out.ndim() != 3) throw nb::value_error("merge: outputs must be [tokens, heads, head_dim]");
  // FlashInfer's layout: v [tokens, heads, D], s [tokens, heads]: tokens as the batch, one query each.
  const causalattn_shape shape{static_cast<int64_t>(out.shape(0)), static_cast<int64_t>(out.shape(1)), 1, 1, 1,
                               static_cast<int64_t>(out.shape(2))};
  auto layout3 = [](const char* name, const auto& a) {
    if (a.ndim() != 3 || a.stride(2) != 1) throw nb::value_error((std::string(name) + " must be [tokens, heads, head_dim] with head_dim contiguous").c_str());
    return causalattn_layout{a.stride(0), a.stride(1), 0};
  };
  auto check_lse = [&](const char* name, const auto& s) {
    if (s.ndim() != 2 || s.shape(0) != out.shape(0) || s.shape(1) != out.shape(1) || s.stride(1) != 1 ||
        (s.shape(0) > 1 && s.stride(0) != static_cast<int64_t>(s.shape(1)))) {
      throw nb::value_error((std::string(name) + " must be a contiguous [tokens, heads] array").c_str());
    }
  };
  std::vector<causalattn_partial_f32> parts;
  for (size_t i = 0; i < outs.size(); ++i) {
    for (size_t d = 0; d < 3; ++d) {
      if (outs[i].shape(d) != out.shape(d)) throw nb::value_error("every part must have the shape of the result");
    }
    check_lse("s", lses[i]);
    parts.push_back({outs[i].data(), layout3("v", outs[i]), lses[i].data()});
  }
  const causalattn_layout out_layout = layout3("out", out);
  if (lse.has_value()) check_lse("out s", *lse);
  int status = 0;
  {
    nb::gil_scoped_release release;
    status = causalattn_merge_f32(&shape, parts.data(), static_cast<int32_t>(parts.size()), out.data(), out_layout,
                                  lse.has_value() ? lse->data() : nullptr);
  }
  check(status);
}

// The textbook modules: forward on a C-contiguous [batch, num_tokens, d_in] array into a new one.
nb::ndarray<nb::numpy, float> module_forward(const causalattn::AttentionModule& module,
                                             nb::ndarray<const float, nb::ndim<3>, nb::c_contig, nb::device::cpu> x) {
  const int64_t batch = static_cast<int64_t>(x.shape(0)), tokens = static_cast<int64_t>(x.shape(1));
  auto* y = new std::vector<float>(static_cast<size_t>(batch * tokens * module.d_out()));
  nb::capsule owner(y, [](void* p) noexcept { delete static_cast<std::vector<float>*>(p); });
  {
    nb::gil_scoped_release release;
    module.forward(x.data(), batch, tokens, static_cast<int64_t>(x.shape(2)), y->data());
  }
  return nb::ndarray<nb::numpy, float>(y->data(), {x.shape(0), x.shape(1), static_cast<size_t>(module.d_out())},
                                       owner);
}

using Weights = std::map<std::string, nb::ndarray<const float, nb::c_contig, nb::device::cpu>>;

causalattn::StateDict state_dict_of(const Weights& weights) {
  causalattn::StateDict dict;
  for (const auto& [name, array] : weights) {
    causalattn::HostTensor t;
    for (size_t i = 0; i < array.ndim(); ++i) t.shape.push_back(static_cast<int64_t>(array.shape(i)));
    t.data.assign(array.data(), array.data() + array.size());
    dict.emplace(name, std::move(t));
  }
  return dict;
}

std::map<std::string, nb::ndarray<nb::numpy, float>> state_dict_to_python(const causalattn::StateDict& dict) {
  std::map<std::string, nb::ndarray<nb::numpy, float>> out;
  for (const auto& [name, tensor] : dict) {
    auto* data = new std::vector<float>(tensor.data);
    nb::capsule owner(data, [](void* p) noexcept { delete static_cast<std::vector<float>*>(p); });
    std::vector<size_t> shape(tensor.shape.begin(), tensor.shape.end());
    out.emplace(name, nb::ndarray<nb::numpy, float>(data->data(), shape.size(), shape.data(), owner));
  }
  return out;
}

}  // namespace

NB_MODULE(_causalattn, m) {
  // causalattn::Error as ValueError (what the caller passed) or RuntimeError (anything else).
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const causalattn::Error& e) {
      if (e.status() == CAUSALATTN_ERROR_INTERNAL || e.status() == CAUSALATTN_ERROR_UNSUPPORTED) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
      } else {
        PyErr_SetString(PyExc_ValueError, e.what());
      }
    }
  });
  nb::class_<causalattn::AttentionModule>(m, "AttentionModule")
      .def("forward", &module_forward, nb::arg("x").noconvert())
      .def("train", &causalattn::AttentionModule::train, nb::arg("mode") = true)
      .def("eval", &causalattn::AttentionModule::eval)
      .def_prop_ro("training", &causalattn::AttentionModule::training)
      .def("manual_seed", &causalattn::AttentionModule::manual_seed, nb::arg("seed"))
      .def("set_num_threads", &causalattn::AttentionModule::set_num_threads, nb::arg("num_threads"))
      .def("load_state_dict", [](causalattn::AttentionModule& m, const Weights& w) { m.load_state_dict(state_dict_of(w)); },
           nb::arg("state_dict"))
      .def("state_dict", [](const causalattn::AttentionModule& m) { return state_dict_to_python(m.state_dict()); })
      .def("load", &causalattn::AttentionModule::load, nb::arg("path"))
      .def("save", &causalattn::AttentionModule::save, nb::arg("path"))
      .def_prop_ro("d_in", &causalattn::AttentionModule::d_in)
      .def_prop_ro("d_out", &causalattn::AttentionModule::d_out)
      .def_prop_ro("context_length", &causalattn::AttentionModule::context_length)
      .def_prop_ro("num_heads", &causalattn::AttentionModule::num_heads)
      .def_prop_ro("dropout", &causalattn::AttentionModule::dropout);
  nb::class_<causalattn::CausalAttention, causalattn::AttentionModule>(m, "CausalAttention")
      .def(nb::init<int64_t, int64_t, int64_t, float, bool>(), nb::arg("d_in"), nb::arg("d_out"),
           nb::arg("context_length"), nb::arg("dropout"), nb::arg("qkv_bias") = false);
  nb::class_<causalattn::MultiHeadAttention, causalattn::AttentionModule>(m, "MultiHeadAttention")
      .def(nb::init<int64_t, int64_t, int64_t, float, int64_t, bool>(), nb::arg("d_in"), nb::arg("d_out"),
           nb::arg("context_length"), nb::arg("dropout"), nb::arg("num_heads"), nb::arg("qkv_bias") = false);

  m.doc() = "causalattn's C API over numpy arrays and PyTorch CPU tensors (see causalattn)";
  // noconvert: an array of another dtype or device is refused, never copied (a copy of out would
  // be written and lost).
  m.def("attend", &attend, nb::arg("q").noconvert(), nb::arg("k").noconvert(), nb::arg("v").noconvert(),
        nb::arg("out").noconvert(), nb::arg("lse").none().noconvert(),
        nb::arg("causal"), nb::arg("scale"), nb::arg("num_threads"), nb::arg("window"), nb::arg("cu_q").none(),
        nb::arg("cu_k").none(), nb::arg("dropout_p"), nb::arg("seed"), nb::arg("kv_lens").none(),
        nb::arg("block_table").none(), nb::arg("softcap"), nb::arg("alibi_slopes").none().noconvert(),
        nb::arg("sinks").none().noconvert(), nb::arg("top_left") = false);
  m.def("merge", &merge, nb::arg("outs").noconvert(), nb::arg("lses").noconvert(), nb::arg("out").noconvert(),
        nb::arg("lse").none().noconvert());
  m.def("isa", [] { return std::string(causalattn_isa()); });
  m.def("version", [] { return std::string(causalattn_version()); });
  m.def("dropout_keep", &causalattn_dropout_keep, nb::arg("p"), nb::arg("seed"), nb::arg("sequence"), nb::arg("head"),
        nb::arg("query"), nb::arg("key"));
}
