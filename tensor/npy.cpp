#include "tensor/npy.hpp"
namespace theta {}
