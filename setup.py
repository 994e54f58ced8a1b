"""The one build step pyproject.toml cannot declare. pyproject.toml maps notebooks/ onto wbcbench._notebooks
only to ship the training notebook as package data; the jupytext .py twins beside it are book chapters,
not modules, so the build leaves them out (setuptools would install every .py of a package's folder)."""
from setuptools import setup
from setuptools.command.build_py import build_py

NOTEBOOKS = "wbcbench._notebooks"


class BuildPy(build_py):
    def find_package_modules(self, package, package_dir):
        return [] if package == NOTEBOOKS else super().find_package_modules(package, package_dir)


setup(cmdclass={"build_py": BuildPy})
