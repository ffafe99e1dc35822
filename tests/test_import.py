"""`import inv_kernels` never fails because a compiled part, Triton or DALI is missing, and does no heavy work."""

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_import_without_compiled_extension_or_triton():
    result = _run(
        """
        import sys
        sys.modules["inv_kernels._C"] = None   # makes `from inv_kernels import _C` raise ImportError
        sys.modules["triton"] = None
        import torch, inv_kernels
        assert not inv_kernels.HAS_C_EXT and not inv_kernels.HAS_CUDA_EXT and not inv_kernels.HAS_TRITON
        assert "pip install -e ." in inv_kernels.C_MISSING, inv_kernels.C_MISSING
        assert inv_kernels.available_backends("cpu") == ["reference"]
        x, y = torch.randn(3, 4), torch.randn(3, 4)
        assert torch.allclose(inv_kernels.row_cosine(x, y), torch.nn.functional.cosine_similarity(x, y))
        try:
            inv_kernels.row_cosine(x, y, backend="cpu")
        except RuntimeError as error:
            assert "could not be imported" in str(error), error
        else:
            raise SystemExit("an explicit cpu request fell back silently")
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_import_does_not_load_dali():
    result = _run(
        """
        import sys, inv_kernels
        print(any(name.startswith("nvidia.dali") for name in sys.modules))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
