"""Width factor: scale a layer's channel count, never below 1."""


def scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))
