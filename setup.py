"""Installs muax: MuZero planning with a learned model for gymnasium environments."""
import re
from pathlib import Path

from setuptools import find_packages, setup

_HERE = Path(__file__).parent
_VERSION = re.search(r'__version__ = "([^"]+)"',
                     (_HERE / "muax" / "__init__.py").read_text()).group(1)

setup(
    name="muax",
    version=_VERSION,
    description="MuZero for gymnasium environments, built on DeepMind's mctx, JAX and Haiku.",
    long_description=(_HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["muax", "muax.*"]),
    python_requires=">=3.11",
    install_requires=[
        "jax>=0.4.35",
        "dm-haiku>=0.0.13",
        "optax>=0.2.2",
        "mctx>=0.0.5",
        "chex>=0.1.86",
        "gymnasium>=1.1",
        "tensorboardX>=2.6",
        "numpy>=1.26",
        "tqdm>=4.66",
    ],
    extras_require={
        "test": ["pytest>=8", "gymnasium[box2d]>=1.0", "pettingzoo>=1.24", "ale-py>=0.9",
                 "opencv-python-headless>=4", "minatar>=1.0.15", "pgx>=2.6", "gymnax>=1.0.1"],
        "box2d": ["gymnasium[box2d]>=1.0"],
        "games": ["pettingzoo>=1.24"],
        # ale-py's wheels ship the ROMs; gymnasium's AtariPreprocessing resizes with OpenCV.
        "atari": ["ale-py>=0.9", "opencv-python-headless>=4"],
        "minatar": ["minatar>=1.0.15"],
        # JAX environments for the compiled loop (muax.loop.jitted). gymnax 1.0
        # (its step_env reports terminations only; muax.jax_envs adds the clock)
        # pins gymnasium < 1.4, so with this extra pip picks gymnasium 1.3.
        "jax-envs": ["pgx>=2.6", "gymnax>=1.0.1"],
    },
    entry_points={"console_scripts": ["muax=muax.cli:main"]},
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
