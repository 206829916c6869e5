// CUDA emulation: stands in for the toolkit header of this name (see cuda_emu/emu.h).
#pragma once
#include "cuda_emu/emu.h"
#include "cuda_emu/half.h"
