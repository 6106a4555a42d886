# embed.cmake - turn a text file into a C string constant (used for the embedded default
# config). Invoked as: cmake -DINPUT=f.yaml -DOUTPUT=f.c -DSYMBOL=name -P embed.cmake
file(READ ${INPUT} content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
file(WRITE ${OUTPUT} "/* Generated from ${INPUT} by tools/embed.cmake. Do not edit. */\n")
file(APPEND ${OUTPUT} "const char ${SYMBOL}[] = {${bytes} 0x00};\n")
