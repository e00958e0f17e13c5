"""sws: learngene initialization of vision transformers by stage-wise weight sharing (SWS).

Importing sws registers its models with timm (``aux_deit_small_patch16_224_L16_33433``,
``deit_small_patch16_224_L12``, ...). The main objects:

- :class:`StageLayout` (``sws.layout``): stages of an Aux-Net and the expansion guidance.
- :class:`AuxNet` (``sws.aux_net``): the ViT with stage-wise weight sharing.
- :class:`Learngene` (``sws.learngene``): the learngene file.
- :func:`extract`, :func:`load_learngene` (``sws.extraction``): a learngene from an Aux-Net or any file.
- :func:`expand` (``sws.expansion``): a Des-Net of any depth from a learngene.
- :func:`import_official` (``sws.official``): official SWS/TLEG checkpoints to learngenes.
- :func:`change_width` (``sws.width``): a learngene grown (function-preserving) or shrunk in width.
"""

from sws.architecture import ViTArchitecture
from sws.aux_net import AuxNet, create_aux_net
from sws.des_net import create_des_net
from sws.errors import SWSError
from sws.expansion import expand, initialize_from_learngene, save_des_net
from sws.extraction import extract, load_learngene
from sws.layout import StageLayout
from sws.learngene import Learngene, SWSLearngene
from sws.models import create_model
from sws.official import import_official
from sws.tleg import TLEGAuxNet, TLEGLearngene
from sws.version import __version__
from sws.width import change_width

__all__ = [
    "AuxNet",
    "Learngene",
    "SWSError",
    "SWSLearngene",
    "StageLayout",
    "TLEGAuxNet",
    "TLEGLearngene",
    "ViTArchitecture",
    "__version__",
    "change_width",
    "create_aux_net",
    "create_des_net",
    "create_model",
    "expand",
    "extract",
    "import_official",
    "initialize_from_learngene",
    "load_learngene",
    "save_des_net",
]
