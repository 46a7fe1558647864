"""Build the JS views (js/src -> llm_widgets/static) whenever the package is built or installed."""
import shutil
import subprocess
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class JSBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version, build_data):
        root = Path(self.root)
        if not (root / "js" / "build.mjs").exists():  # building from an sdist with prebuilt bundles
            return
        npm = shutil.which("npm")
        if npm is None:
            if list((root / "llm_widgets" / "static").glob("*.js")):
                return
            raise RuntimeError("llm-widgets: npm (Node.js >= 18) is needed to build the JS views")
        if not (root / "node_modules" / "esbuild").exists():
            # npm install, not npm ci: registries without other platforms' optional packages make
            # `npm ci` reject the lock file (rollup's optional binaries); the bundles need esbuild only
            subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=root, check=True)
        subprocess.run([npm, "run", "build"], cwd=root, check=True)
