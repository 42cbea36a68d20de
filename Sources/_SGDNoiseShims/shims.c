#include "sgdnoise_shims.h"

#include <math.h>
#include <string.h>

enum { SGDNOISE_MESSAGE_CAPACITY = 1024 };

static _Thread_local char last_message[SGDNOISE_MESSAGE_CAPACITY];
static _Thread_local double last_critical_lr = NAN;
static _Thread_local int last_critical_lr_set = 0;

void sgdnoise_shim_set_error(const char *message, double critical_lr) {
    if (message == NULL) {
        message = "";
    }
    size_t length = strlen(message);
    if (length >= SGDNOISE_MESSAGE_CAPACITY) {
        length = SGDNOISE_MESSAGE_CAPACITY - 1;
        /* Never cut a UTF-8 sequence: back off to the start of the character at the cut. */
        while (length > 0 && ((unsigned char)message[length] & 0xC0) == 0x80) {
            length--;
        }
    }
    memcpy(last_message, message, length);
    last_message[length] = '\0';
    last_critical_lr = critical_lr;
    last_critical_lr_set = 1;
}

const char *sgdnoise_shim_error_message(void) {
    return last_message;
}

double sgdnoise_shim_error_critical_lr(void) {
    return last_critical_lr_set ? last_critical_lr : NAN;
}
