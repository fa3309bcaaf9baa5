"""A user's own code, as it would be written for plain PyTorch Lightning: nothing mlproj-specific.

`DigitsImages` is a LightningDataModule over scikit-learn's 8x8 digits as 1x8x8 images (shipped with
scikit-learn: nothing is downloaded); `DigitsCNN` is a LightningModule that builds its own small conv net from
its constructor arguments and logs with `self.log`. mlproj trains them from config (see ../README.md, beside this package).
"""

from digits_cnn.data import DigitsImages
from digits_cnn.module import DigitsCNN

__all__ = ["DigitsCNN", "DigitsImages"]
