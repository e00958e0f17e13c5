"""The version of sws, in a module of its own so that any module can read it without importing the
package (which imports everything)."""

__version__ = "0.3.0"
