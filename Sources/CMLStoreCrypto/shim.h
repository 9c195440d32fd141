#ifndef CMLSTORE_CRYPTO_SHIM_H
#define CMLSTORE_CRYPTO_SHIM_H
#include <openssl/evp.h>
#include <openssl/hmac.h>
#endif
