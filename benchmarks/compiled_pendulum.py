"""gymnax Pendulum-v1 in the compiled loop (Sampled MuZero): env steps and seconds to -200.

For each seed, trains with `muax train gymnax:Pendulum-v1`'s settings
(`cli_compiled.compiled_setup`: policy sampled with the host loop's Pendulum
settings, 16 torques sampled per node, Gumbel 16, over 16 environments; `--set
KEY=VALUE` overrides any option), testing 16 greedy episodes after every chunk
until their mean reaches `--goal` (as `benchmarks/pendulum.py` does for the
host loop); prints one JSON line per seed and a last line with the medians and
the share of seeds that reached it (`solved`). A random policy scores about -1,200.
Needs gymnax (`pip install "muax[jax-envs]"`).

Usage: python benchmarks/compiled_pendulum.py [--seeds 0 1 2] [--goal -200]
    [--set KEY=VALUE ...] [--max-env-steps 60000] [--chunk 100] [--platform cpu|gpu]
"""
import compiled_cartpole

if __name__ == "__main__":
  compiled_cartpole.main(env_id="gymnax:Pendulum-v1", goal=-200., seeds=(0, 1, 2),
                         max_env_steps=60_000, chunk=100, test_episodes=16,
                         bench="compiled_pendulum", doc=__doc__)
