// The Python module inv_kernels._C: one m.def per entry point. Entry points take raw pointers (as integers),
// shapes, strides, a dtype code and, for CUDA, a device index and stream handle; they release the GIL while working.
#include <pybind11/pybind11.h>

#include <cstdint>

#include "augment/fused_augment.h"
#include "rowcos/row_cosine.h"
#include "scoring/scoring.h"
#include "infonce/infonce.h"
#ifdef INV_WITH_CUDA
#include "common/cuda_runtime.h"
#endif

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "inv_kernels compiled kernels (C++ CPU with OpenMP; CUDA when built with nvcc)";
#ifdef INV_WITH_CUDA
  m.attr("WITH_CUDA") = true;
#else
  m.attr("WITH_CUDA") = false;
#endif

  py::module_ cpu = m.def_submodule("cpu", "C++ CPU kernels (OpenMP)");
  cpu.def("row_cosine_fwd", &inv::row_cosine_fwd_cpu, py::call_guard<py::gil_scoped_release>(), py::arg("x"),
          py::arg("sx"), py::arg("y"), py::arg("sy"), py::arg("out"), py::arg("stats"), py::arg("M"), py::arg("D"),
          py::arg("dtype"), py::arg("eps"));
  cpu.def("row_cosine_bwd", &inv::row_cosine_bwd_cpu, py::call_guard<py::gil_scoped_release>(), py::arg("grad"),
          py::arg("sg"), py::arg("x"), py::arg("sx"), py::arg("y"), py::arg("sy"), py::arg("stats"), py::arg("gx"),
          py::arg("gy"), py::arg("M"), py::arg("D"), py::arg("dtype"), py::arg("eps"));
  cpu.def("invariance_scores_fwd", &inv::invariance_scores_fwd_cpu, py::call_guard<py::gil_scoped_release>(),
          py::arg("views"), py::arg("s_img"), py::arg("s_view"), py::arg("zc"), py::arg("mean"), py::arg("w"),
          py::arg("cos"), py::arg("dist"), py::arg("n"), py::arg("k"), py::arg("D"), py::arg("dtype"), py::arg("eps"));
  cpu.def("group_invariance_fwd", &inv::group_invariance_fwd_cpu, py::call_guard<py::gil_scoped_release>(),
          py::arg("z"), py::arg("offsets"), py::arg("out"), py::arg("N"), py::arg("G"), py::arg("D"), py::arg("dtype"),
          py::arg("eps"));
  cpu.def("scoring_isa", &inv::scoring_cpu_isa);
  cpu.def("infonce_fwd", &inv::infonce_fwd_cpu, py::call_guard<py::gil_scoped_release>(), py::arg("x"), py::arg("k"),
          py::arg("c"), py::arg("loss"), py::arg("lse"), py::arg("correct"), py::arg("M"), py::arg("K"), py::arg("D"),
          py::arg("dtype"), py::arg("inv_temperature"));
  cpu.def("infonce_bwd", &inv::infonce_bwd_cpu, py::call_guard<py::gil_scoped_release>(), py::arg("grad"),
          py::arg("x"), py::arg("k"), py::arg("c"), py::arg("lse"), py::arg("gx"), py::arg("gk"), py::arg("M"),
          py::arg("K"), py::arg("D"), py::arg("dtype"), py::arg("inv_temperature"));
  cpu.def("ntxent_fwd", &inv::ntxent_fwd_cpu, py::call_guard<py::gil_scoped_release>(), py::arg("z"), py::arg("loss"),
          py::arg("lse"), py::arg("correct"), py::arg("M"), py::arg("D"), py::arg("dtype"),
          py::arg("inv_temperature"));
  cpu.def("ntxent_bwd", &inv::ntxent_bwd_cpu, py::call_guard<py::gil_scoped_release>(), py::arg("grad"), py::arg("z"),
          py::arg("lse"), py::arg("gz"), py::arg("M"), py::arg("D"), py::arg("dtype"), py::arg("inv_temperature"));
  cpu.def("fused_augment", &inv::fused_augment_cpu, py::call_guard<py::gil_scoped_release>(), py::arg("src"),
          py::arg("s_b"), py::arg("s_c"), py::arg("s_h"), py::arg("s_w"), py::arg("sizes"), py::arg("B_src"),
          py::arg("iparams"), py::arg("fparams"), py::arg("norm"), py::arg("out"), py::arg("V"), py::arg("S"),
          py::arg("dtype"));

#ifdef INV_WITH_CUDA
  py::module_ cuda = m.def_submodule("cuda", "CUDA kernels, launched on the caller's stream");
  cuda.def("device_count", &inv::cuda_device_count);
  cuda.def("runtime_version", &inv::cuda_runtime_version);
  cuda.def("fused_augment", &inv::fused_augment_cuda, py::call_guard<py::gil_scoped_release>(), py::arg("src"),
           py::arg("s_b"), py::arg("s_c"), py::arg("s_h"), py::arg("s_w"), py::arg("sizes"), py::arg("B_src"),
           py::arg("iparams"), py::arg("fparams"), py::arg("norm"), py::arg("out"), py::arg("workspace"),
           py::arg("V"), py::arg("S"), py::arg("dtype"), py::arg("device"), py::arg("stream"));
  cuda.def("row_cosine_fwd", &inv::row_cosine_fwd_cuda, py::call_guard<py::gil_scoped_release>(), py::arg("x"),
           py::arg("sx"), py::arg("y"), py::arg("sy"), py::arg("out"), py::arg("stats"), py::arg("M"), py::arg("D"),
           py::arg("dtype"), py::arg("eps"), py::arg("device"), py::arg("stream"));
  cuda.def("row_cosine_bwd", &inv::row_cosine_bwd_cuda, py::call_guard<py::gil_scoped_release>(), py::arg("grad"),
           py::arg("sg"), py::arg("x"), py::arg("sx"), py::arg("y"), py::arg("sy"), py::arg("stats"), py::arg("gx"),
           py::arg("gy"), py::arg("M"), py::arg("D"), py::arg("dtype"), py::arg("eps"), py::arg("device"),
           py::arg("stream"));
  cuda.def("invariance_scores_fwd", &inv::invariance_scores_fwd_cuda, py::call_guard<py::gil_scoped_release>(),
           py::arg("views"), py::arg("s_img"), py::arg("s_view"), py::arg("zc"), py::arg("mean"), py::arg("w"),
           py::arg("partials"), py::arg("num_col_blocks"), py::arg("n"), py::arg("k"), py::arg("D"),
           py::arg("dtype"), py::arg("device"), py::arg("stream"));
  cuda.def("group_invariance_fwd", &inv::group_invariance_fwd_cuda, py::call_guard<py::gil_scoped_release>(),
           py::arg("z"), py::arg("offsets"), py::arg("out"), py::arg("N"), py::arg("G"), py::arg("D"),
           py::arg("dtype"), py::arg("eps"), py::arg("device"), py::arg("stream"));
  cuda.def("scores_block_n", []() { return inv::kScoresCudaBlockN; });
  cuda.def("infonce_fwd", &inv::infonce_fwd_cuda, py::call_guard<py::gil_scoped_release>(), py::arg("x"),
           py::arg("k"), py::arg("c"), py::arg("loss"), py::arg("lse"), py::arg("correct"), py::arg("M"),
           py::arg("K"), py::arg("D"), py::arg("dtype"), py::arg("inv_temperature"), py::arg("device"),
           py::arg("stream"));
  cuda.def("infonce_bwd", &inv::infonce_bwd_cuda, py::call_guard<py::gil_scoped_release>(), py::arg("grad"),
           py::arg("x"), py::arg("k"), py::arg("c"), py::arg("lse"), py::arg("gx"), py::arg("gk"), py::arg("M"),
           py::arg("K"), py::arg("D"), py::arg("dtype"), py::arg("inv_temperature"), py::arg("device"),
           py::arg("stream"));
  cuda.def("ntxent_fwd", &inv::ntxent_fwd_cuda, py::call_guard<py::gil_scoped_release>(), py::arg("z"),
           py::arg("loss"), py::arg("lse"), py::arg("correct"), py::arg("M"), py::arg("D"), py::arg("dtype"),
           py::arg("inv_temperature"), py::arg("device"), py::arg("stream"));
  cuda.def("ntxent_bwd", &inv::ntxent_bwd_cuda, py::call_guard<py::gil_scoped_release>(), py::arg("grad"),
           py::arg("z"), py::arg("lse"), py::arg("gz"), py::arg("M"), py::arg("D"), py::arg("dtype"),
           py::arg("inv_temperature"), py::arg("device"), py::arg("stream"));
#endif
}
